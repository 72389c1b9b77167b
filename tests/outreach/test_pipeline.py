"""Accounts and the pipeline: stages as history rows, the hooks other domains call (first
referral, at risk, trend, market-data prospects), territories and owners, activities with both
sides, on-the-spot attendees and follow-up tasks."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from liaison.audit.models import AuditEvent
from liaison.directory import services as directory
from liaison.directory.models import Contact
from liaison.outreach import services
from liaison.outreach.models import Account, AccountStageChange, Activity, Stage, Task, Territory
from tests.outreach.conftest import local


def stages(account):
    return list(AccountStageChange.objects.filter(account=account).values_list("from_stage", "to_stage"))


def test_adding_to_the_pipeline_is_idempotent_and_starts_a_history(office, liaison):
    a = services.add_to_pipeline(office.practice, actor=liaison, note="met at the county fair")
    assert services.add_to_pipeline(office.practice, actor=liaison) == a
    assert a.stage == Stage.TARGET and a.source == "directory"
    assert stages(a) == [("", "target")]
    assert a.stage_changes.get().reason == "met at the county fair"


def test_the_market_data_flag_adds_a_prospect(office):
    a = services.add_to_pipeline(
        office.practice, actor="marketdata", source="market_data", note="high Medicare volume"
    )
    assert a.get_source_display() == "Market data (opportunities)"


def test_our_own_practice_is_not_an_account(our_practice):
    with pytest.raises(ValidationError):
        services.add_to_pipeline(our_practice, actor="test")


def test_a_location_can_be_its_own_account(office):
    practice_account = services.add_to_pipeline(office.practice, actor="test")
    office_account = services.add_to_pipeline(office.practice, actor="test", location=office.location)
    assert practice_account != office_account
    assert services.find_account(office.practice, office.location) == office_account
    assert services.find_account(office.practice) == practice_account


def test_touches_move_a_prospect_forward(account, office, liaison):
    services.log_activity(actor=liaison, account=account, kind="call", occurred_at=local(2026, 1, 5))
    account.refresh_from_db()
    assert account.stage == Stage.CONTACTED
    services.log_activity(
        actor=liaison,
        account=account,
        kind="visit",
        occurred_at=local(2026, 1, 9),
        contacts=[office.coordinator],
    )
    account.refresh_from_db()
    assert account.stage == Stage.ENGAGED
    assert stages(account) == [("", "target"), ("target", "contacted"), ("contacted", "engaged")]
    # Planned activities do not count yet.
    other = services.add_to_pipeline(office.practice, actor="test", location=office.location)
    services.log_activity(
        actor=liaison, account=other, kind="visit", occurred_at=local(2099, 1, 1), contacts=[office.nurse]
    )
    assert Account.objects.get(pk=other.pk).stage == Stage.TARGET


def test_the_first_referral_after_outreach_opens_the_referring_stage(account, office, liaison):
    services.log_activity(
        actor=liaison, account=account, kind="visit", occurred_at=local(2026, 1, 5), contacts=[office.nurse]
    )
    services.record_first_referral(office.practice, when=local(2026, 2, 1), actor="referrals")
    account.refresh_from_db()
    assert account.stage == Stage.REFERRING
    assert account.first_referral_at == local(2026, 2, 1) and account.first_referral_after_outreach is True
    assert account.stage_changes.last().reason == "first referral after outreach"
    # Later referrals change nothing.
    services.record_first_referral(office.practice, when=local(2026, 3, 1), actor="referrals")
    account.refresh_from_db()
    assert account.first_referral_at == local(2026, 2, 1) and len(stages(account)) == 3


def test_a_referral_from_a_practice_outside_the_pipeline_makes_it_a_referring_account(office):
    account = services.record_first_referral(office.practice, when=local(2026, 2, 1), actor="referrals")
    assert account.stage == Stage.REFERRING and account.source == "referral"
    assert account.first_referral_after_outreach is False
    # Its history starts at that referral, however late it is recorded (an import of past referrals).
    assert account.stage_changed_at == local(2026, 2, 1)
    assert [(c.to_stage, c.at) for c in account.stage_changes.order_by("pk")] == [
        ("target", local(2026, 2, 1)),
        ("referring", local(2026, 2, 1)),
    ]


def test_a_lapsed_account_referring_again_reopens(account):
    services.record_first_referral(account.practice, when=local(2025, 2, 1), actor="referrals")
    services.change_stage(account, Stage.LAPSED, actor="manager", reason="no referral in a year")
    services.record_first_referral(account.practice, when=local(2026, 2, 1), actor="referrals")
    account.refresh_from_db()
    assert account.stage == Stage.REFERRING
    assert account.stage_changes.last().reason == "referring again after lapsing"


def test_analytics_marks_an_account_at_risk_and_clears_it(account):
    services.record_first_referral(account.practice, when=local(2026, 1, 2), actor="referrals")
    services.mark_at_risk(account, reason="referrals down 60% over 90 days", actor="analytics")
    account.refresh_from_db()
    assert account.stage == Stage.AT_RISK
    services.clear_at_risk(account, reason="back to normal", actor="analytics")
    account.refresh_from_db()
    assert account.stage == Stage.REFERRING
    assert stages(account)[-2:] == [("referring", "at_risk"), ("at_risk", "referring")]
    services.set_referral_trend(account, trend="cooling", actor="analytics")
    assert Account.objects.get(pk=account.pk).trend == "cooling"
    with pytest.raises(ValidationError):
        services.set_referral_trend(account, trend="sideways", actor="analytics")


def test_a_manual_stage_change_to_at_risk_needs_a_reason(account):
    with pytest.raises(ValidationError) as exc:
        services.change_stage(account, Stage.AT_RISK, actor="manager")
    assert "reason" in exc.value.message_dict


def test_stage_changes_are_audited(account):
    services.change_stage(account, Stage.ENGAGED, actor="manager", reason="long talk")
    assert AuditEvent.objects.filter(action="stage", object_id=str(account.pk)).exists()


# Territories -------------------------------------------------------------------------------


def test_accounts_inherit_the_owner_of_their_territory(office, make_user):
    lee = make_user("liaison", email="lee@example.org")
    services.save_territory(None, actor="manager", name="Central", liaison=lee, zip_codes=["43212"])
    account = services.add_to_pipeline(office.practice, actor="test")
    assert account.owner == lee and account.owner_from_territory


def test_a_zip_code_wins_over_a_county(office, make_user):
    county_person = make_user("liaison", email="county@example.org")
    zip_person = make_user("liaison", email="zip@example.org")
    account = services.add_to_pipeline(office.practice, actor="test")
    services.save_territory(
        None, actor="manager", name="Franklin", liaison=county_person, counties=["franklin, oh"]
    )
    assert Territory.objects.get(name="Franklin").counties == ["Franklin County, OH"]
    account.refresh_from_db()
    assert account.owner == county_person
    services.save_territory(None, actor="manager", name="Grandview", liaison=zip_person, zip_codes=["43212"])
    account.refresh_from_db()
    assert account.owner == zip_person


def test_a_zip_code_belongs_to_one_territory_and_bad_areas_are_named(db, make_user):
    services.save_territory(None, actor="manager", name="A", liaison=None, zip_codes=["43212"])
    with pytest.raises(ValidationError) as exc:
        services.save_territory(
            None,
            actor="manager",
            name="B",
            liaison=None,
            zip_codes=["43212", "99999", "abc"],
            counties=["Narnia, OH"],
        )
    errors = exc.value.message_dict
    assert "43212 already in A." in errors["zip_codes"]
    assert "99999 is not a known US ZIP code." in errors["zip_codes"]
    assert errors["counties"] == ["'Narnia, OH' is not a county of OH."]


def test_a_manually_set_owner_does_not_follow_the_territory(account, office, make_user, liaison):
    other = make_user("liaison", email="other@example.org")
    services.save_territory(None, actor="manager", name="Central", liaison=other, zip_codes=["43212"])
    account.refresh_from_db()
    assert account.owner == liaison  # set by hand in the fixture
    services.update_account(account, actor="manager", follow_territory=True)
    account.refresh_from_db()
    assert account.owner == other


def test_only_liaisons_own_territories_and_accounts(office, make_user):
    with pytest.raises(ValidationError):
        services.save_territory(None, actor="manager", name="X", liaison=make_user("analyst"))
    with pytest.raises(ValidationError):
        services.add_to_pipeline(office.practice, actor="test", owner=make_user("coordinator"))


# Activities ----------------------------------------------------------------------------------


def test_an_activity_records_both_sides_materials_and_a_follow_up(
    account, office, our_doctors, liaison, make_user
):
    from liaison.outreach.models import CollateralItem

    brochure = services.save_collateral(None, actor="test", title="Knee brochure", kind="brochure")
    physician_user = make_user("physician", email="doc@example.org", provider=our_doctors[0])
    activity = services.log_activity(
        actor=liaison,
        account=account,
        kind="lunch",
        occurred_at=local(2026, 4, 2),
        our_physicians=our_doctors,
        providers=[office.dr_family, office.np],
        contacts=[office.nurse],
        new_attendees=[services.NewAttendee("Ruth", "Newcomer", "referral_coordinator")],
        materials={brochure: 20},
        purpose="education",
        topics="Same-day fracture clinic",
        clinical_questions="When to image a knee before referring?",
        outcome="They will try the fax form",
        next_step="Send the fax form",
        cost=Decimal("96.00"),
        follow_up=services.FollowUp("Send the fax form", date(2026, 4, 9), physician_user),
    )
    new = Contact.objects.get(last_name="Newcomer")
    assert new.practice == office.practice and new.role == "referral_coordinator"
    sides = {(a.is_ours, str(a)) for a in activity.attendees.all()}
    assert sides == {
        (True, "Olivia Bone, MD"),
        (True, "Hugo Hip, MD"),
        (False, "Frank Family, MD"),
        (False, "Nina Practitioner, NP"),
        (False, "Nora Nurse"),
        (False, "Ruth Newcomer"),
    }
    # $96 over the four office people: only Dr Family is charged.
    assert list(activity.ledger_entries.values_list("provider__last_name", "amount")) == [
        ("Family", Decimal("24.00"))
    ]
    assert activity.materials.get().quantity == 20 and CollateralItem.objects.get().left_at.count() == 1
    task = Task.objects.get()
    assert task.assignee == physician_user and task.account == account and task.activity == activity
    assert activity.liaison == liaison and activity.status == "completed"


def test_a_bad_follow_up_leaves_nothing_written(account, office, make_user, liaison):
    with pytest.raises(ValidationError) as exc:
        services.log_activity(
            actor=liaison,
            account=account,
            kind="visit",
            new_attendees=[services.NewAttendee("Walk", "In", "nurse")],
            follow_up=services.FollowUp("x", date(2026, 1, 1), make_user("analyst")),
        )
    assert "assignee" in exc.value.message_dict
    assert not Activity.objects.exists() and not Contact.objects.filter(last_name="In").exists()


def test_an_activity_needs_an_account_unless_it_is_an_event(db, liaison):
    with pytest.raises(ValidationError):
        services.log_activity(actor=liaison, account=None, kind="visit")
    assert services.log_activity(actor=liaison, account=None, kind="event", topics="Spring seminar").pk


def test_an_activity_in_the_future_is_planned(account, liaison):
    from django.utils import timezone

    a = services.log_activity(
        actor=liaison, account=account, kind="lunch", occurred_at=timezone.now() + timedelta(days=3)
    )
    assert a.status == "planned"


def test_updating_attendees_is_audited(account, office, liaison):
    a = services.log_activity(actor=liaison, account=account, kind="visit", contacts=[office.nurse])
    services.update_activity(a, actor=liaison, contacts=[office.nurse, office.coordinator])
    event = AuditEvent.objects.filter(object_type="outreach.activity", action="update").last()
    assert "attendees" in event.changes


def test_a_task_is_completed_and_reopened(account, liaison):
    t = services.create_task(
        actor=liaison, title="Call Rita", due_on=date(2026, 1, 1), assignee=liaison, account=account
    )
    services.complete_task(t, actor=liaison)
    t.refresh_from_db()
    assert t.status == "done" and t.done_by == liaison
    services.reopen_task(t, actor=liaison)
    t.refresh_from_db()
    assert t.status == "open" and t.done_at is None


def test_on_the_spot_attendees_need_a_name(account, liaison):
    with pytest.raises(ValidationError):
        services.log_activity(
            actor=liaison, account=account, kind="visit", new_attendees=[services.NewAttendee("", "Nameless")]
        )


def test_a_calendar_feed_token_is_stored_hashed_and_revocable(liaison):
    feed, raw = services.create_calendar_feed(liaison, actor=liaison)
    assert raw.startswith("cal_") and raw not in feed.digest and feed.prefix == raw[:10]
    assert services.feed_for_token(raw) == feed
    _, raw2 = services.create_calendar_feed(liaison, actor=liaison)  # a new one revokes the old
    assert services.feed_for_token(raw) is None and services.feed_for_token(raw2) is not None
    assert services.feed_for_token("cal_wrong") is None


def test_collateral_refuses_other_file_types(db, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    from django.core.files.uploadedfile import SimpleUploadedFile

    with pytest.raises(ValidationError):
        services.save_collateral(None, actor="t", title="x", file=SimpleUploadedFile("x.exe", b"MZ"))
    item = services.save_collateral(
        None, actor="t", title="Fax form", file=SimpleUploadedFile("fax.pdf", b"%PDF-1.4")
    )
    assert item.file.name.startswith("collateral/") and item.file.name.endswith(".pdf")
    assert (tmp_path / item.file.name).read_bytes() == b"%PDF-1.4"


def test_directory_contact_changes_do_not_touch_activities(account, office, liaison):
    a = services.log_activity(actor=liaison, account=account, kind="visit", contacts=[office.nurse])
    directory.update_contact(office.nurse, actor="test", is_active=False)
    assert a.attendees.count() == 1


def test_a_done_activity_cannot_be_in_the_future(account, liaison):
    from django.utils import timezone

    with pytest.raises(ValidationError) as exc:
        services.log_activity(
            actor=liaison,
            account=account,
            kind="visit",
            status="completed",
            occurred_at=timezone.now() + timedelta(days=2),
        )
    assert "mark it planned" in exc.value.message_dict["occurred_at"][0]


def test_a_planned_visit_whose_day_has_passed_needs_attention(account, liaison):
    from liaison.outreach import selectors

    a = services.log_activity(
        actor=liaison, account=account, kind="visit", occurred_at=local(2026, 1, 5), status="planned"
    )
    assert [x.pk for x in selectors.needs_attention(liaison).unconfirmed] == [a.pk]
    services.update_activity(a, actor=liaison, status="completed")
    assert selectors.needs_attention(liaison).unconfirmed == []
