"""The referral lifecycle: history rows, allowed transitions, referrer matching, duplicates, SLAs."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from liaison.audit.models import AuditEvent
from liaison.referrals import services
from liaison.referrals.models import Referral, SlaBreach, Status
from liaison.referrals.services import ReferrerInfo, TransitionError
from liaison.referrals.sla import add_business_days, business_days_between
from liaison.referrals.tasks import check_service_levels
from tests.referrals.conftest import PATIENT

TZ = timezone.get_current_timezone()


def at(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=TZ)


def test_a_known_npi_links_the_referring_provider_and_office(
    referral, referring_provider, referring_location
):
    assert referral.referring_provider == referring_provider
    assert referral.referring_location == referring_location
    assert not referral.referrer_to_match
    assert referral.status == Status.RECEIVED
    assert [e.to_status for e in referral.events.all()] == ["received"]


def test_an_unknown_referrer_still_creates_the_referral_flagged_to_match(db, referring_provider):
    referral = services.receive_referral(
        actor="test",
        referrer=ReferrerInfo(npi="1999999999", last_name="Family", fax="614 555 0102"),
        **PATIENT,
    )
    assert referral.referrer_to_match and referral.referring_provider is None
    assert referral.referrer_as_received == {
        "npi": "1999999999",
        "last_name": "Family",
        "fax": "614 555 0102",
    }
    candidates = services.referrer_candidates(ReferrerInfo(**referral.referrer_as_received))
    assert candidates[0][0] == referring_provider
    assert set(candidates[0][1]) == {"name", "office fax"}
    services.match_referrer(referral, referring_provider, actor="test")
    referral.refresh_from_db()
    assert not referral.referrer_to_match and referral.referring_location is not None


def test_the_full_lifecycle_is_recorded_step_by_step(referral):
    appointment = timezone.now() + dt.timedelta(days=3)
    services.change_status(referral, Status.ACCEPTED, actor="test")
    services.change_status(referral, Status.SCHEDULED, actor="test", appointment_at=appointment)
    services.change_status(
        referral, Status.SCHEDULED, actor="test", appointment_at=appointment + dt.timedelta(days=1)
    )
    services.change_status(referral, Status.SEEN, actor="test")
    services.change_status(
        referral, Status.NOTE_SENT, actor="test", channel="fax", included=["consult_note", "prescriptions"]
    )
    services.change_status(referral, Status.CLOSED, actor="test")
    referral.refresh_from_db()
    steps = [(e.from_status, e.to_status) for e in referral.events.filter(kind="status")]
    assert steps == [
        ("", "received"),
        ("received", "accepted"),
        ("accepted", "scheduled"),
        ("scheduled", "scheduled"),
        ("scheduled", "seen"),
        ("seen", "note_sent"),
        ("note_sent", "closed"),
    ]
    reschedule = referral.events.filter(kind="status", from_status="scheduled", to_status="scheduled").get()
    assert reschedule.data["rescheduled_from"] == appointment.isoformat()
    assert referral.seen_at and referral.note_sent_at and referral.closed_at
    note_event = referral.events.get(to_status="note_sent")
    assert note_event.data == {"channel": "fax", "included": ["consult_note", "prescriptions"]}


@pytest.mark.parametrize(
    ("path", "to_status"),
    [([], Status.SEEN), ([Status.ACCEPTED], Status.CLOSED), ([Status.ACCEPTED], Status.NOTE_SENT)],
)
def test_invalid_transitions_are_refused_with_a_clear_message(referral, path, to_status):
    for step in path:
        services.change_status(referral, step, actor="test")
    with pytest.raises(TransitionError) as exc:
        services.change_status(referral, to_status, actor="test")
    assert "cannot become" in exc.value.messages[0] and "from here it can become" in exc.value.messages[0]
    assert Referral.objects.get(pk=referral.pk).status == (path[-1] if path else Status.RECEIVED)


def test_a_consult_note_is_sent_with_something(referral):
    services.change_status(referral, Status.ACCEPTED, actor="test")
    services.change_status(referral, Status.SCHEDULED, actor="test", appointment_at=timezone.now())
    services.change_status(referral, Status.SEEN, actor="test")
    with pytest.raises(ValidationError, match="the consult note at least"):
        services.change_status(referral, Status.NOTE_SENT, actor="test", channel="fax")
    assert Referral.objects.get(pk=referral.pk).status == Status.SEEN


def test_scheduling_needs_a_time_and_declining_needs_a_reason(referral):
    services.change_status(referral, Status.ACCEPTED, actor="test")
    with pytest.raises(ValidationError, match="appointment"):
        services.change_status(referral, Status.SCHEDULED, actor="test")
    with pytest.raises(ValidationError, match="Say why"):
        services.change_status(referral, Status.DECLINED, actor="test")
    services.change_status(referral, Status.DECLINED, actor="test", decline_reason="not_covered")
    services.change_status(referral, Status.RECEIVED, actor="test")  # re-opened
    assert referral.events.filter(kind="status").last().data == {"reopened_from": "declined"}


def test_a_no_show_waits_for_the_appointment_and_seen_dates_the_visit_at_the_appointment(make_referral):
    upcoming, past = make_referral(), make_referral(patient_last_name="Second")
    tomorrow = timezone.now() + dt.timedelta(days=1)
    yesterday = (timezone.now() - dt.timedelta(days=1)).replace(microsecond=0)
    for referral, when in ((upcoming, tomorrow), (past, yesterday)):
        services.change_status(referral, Status.ACCEPTED, actor="test")
        services.change_status(referral, Status.SCHEDULED, actor="test", appointment_at=when)
    with pytest.raises(ValidationError, match="a no-show is recorded once it has passed"):
        services.change_status(upcoming, Status.NO_SHOW, actor="test")
    assert Referral.objects.get(pk=upcoming.pk).status == Status.SCHEDULED
    services.change_status(past, Status.SEEN, actor="test")  # recorded a day after the visit
    assert Referral.objects.get(pk=past.pk).seen_at == yesterday
    services.change_status(upcoming, Status.SEEN, actor="test")  # seen before the time booked
    assert Referral.objects.get(pk=upcoming.pk).seen_at < tomorrow


def test_duplicates_are_found_by_patient_referrer_and_date(referral, referring_provider):
    found = services.find_duplicates(
        patient_last_name="QUACKENBUSH ",
        patient_dob=PATIENT["patient_dob"],
        referring_provider=referring_provider,
        received_on=timezone.localdate(),
    )
    assert found == [referral]
    assert not services.find_duplicates(
        patient_last_name="Quackenbush",
        patient_dob=dt.date(1961, 4, 3),
        referring_provider=referring_provider,
        received_on=timezone.localdate(),
    )


def test_audit_rows_name_patient_fields_without_their_values(referral):
    services.update_referral(referral, actor="test", patient_phone="614-555-0111", urgency="urgent")
    events = AuditEvent.objects.filter(object_type="referrals.referral")
    text = str(list(events.values_list("changes", "object_repr")))
    for secret in ("Zelda", "Quackenbush", "1961-04-02", "778899", "knee", "0111", "XQZ"):
        assert secret not in text
    update = events.get(action="update")
    assert (
        update.changes == {"patient_phone": "(patient data changed)", "urgency": ["routine", "urgent"]}
        and update.phi
    )


def test_business_days_skip_weekends_and_holidays():
    holidays = {dt.date(2026, 11, 26)}  # Thanksgiving
    assert add_business_days(at(2026, 11, 25, 10, 0), 1, holidays) == at(2026, 11, 27, 10, 0)
    assert add_business_days(at(2026, 11, 27, 15, 0), 1, holidays) == at(
        2026, 11, 30, 15, 0
    )  # Friday -> Monday
    assert add_business_days(at(2026, 11, 28, 9, 0), 1, holidays) == at(2026, 11, 30, 17, 0)  # Saturday
    assert business_days_between(at(2026, 11, 25, 9), at(2026, 11, 30, 9), holidays) == 2


def test_missed_service_levels_open_breaches_that_close_when_done(make_referral, service_line):
    received = timezone.now() - dt.timedelta(days=20)
    late = make_referral(service_line=service_line, received_at=received)
    on_time = make_referral(service_line=service_line, patient_last_name="Other")
    assert check_service_levels.call() == {"opened": 2, "resolved": 0}  # late: no contact, no appointment
    assert set(SlaBreach.objects.filter(referral=late).values_list("kind", flat=True)) == {
        "first_contact",
        "appointment",
    }
    assert not SlaBreach.objects.filter(referral=on_time).exists()
    services.record_contact(late, actor="test", outcome="reached")
    # Resolved as the step is done: the queue's "overdue" view does not wait for the hourly check.
    assert set(
        SlaBreach.objects.filter(referral=late, resolved_at__isnull=True).values_list("kind", flat=True)
    ) == {"appointment"}
    assert check_service_levels.call() == {"opened": 0, "resolved": 0}  # nothing left to do


def test_a_first_referral_opens_the_practice_account_in_the_pipeline(
    referring_provider, referring_practice, site
):
    from liaison.outreach import services as outreach
    from liaison.outreach.models import Stage

    account = outreach.add_to_pipeline(referring_practice, actor="test")
    assert account.stage == Stage.TARGET
    services.receive_referral(
        actor="test", referrer=ReferrerInfo(npi=referring_provider.npi), site=site, **PATIENT
    )
    account.refresh_from_db()
    assert account.stage == Stage.REFERRING and account.first_referral_at is not None


def test_an_unknown_practice_becomes_a_referring_account_when_its_referrer_is_matched(
    referring_provider, referring_practice
):
    from liaison.outreach.models import Account, Stage

    referral = services.receive_referral(actor="test", referrer=ReferrerInfo(last_name="Family"), **PATIENT)
    assert not Account.objects.exists()
    services.match_referrer(referral, referring_provider, actor="test")
    assert Account.objects.get(practice=referring_practice).stage == Stage.REFERRING


def test_an_overdue_step_becomes_a_task_for_the_coordinator_and_closes_when_done(
    make_referral, make_user, service_line
):
    from liaison.outreach.models import Task

    coordinator = make_user("coordinator")
    referral = make_referral(
        service_line=service_line, received_at=timezone.now() - dt.timedelta(days=20), assigned_to=coordinator
    )
    check_service_levels.call()
    tasks = Task.objects.filter(referral=referral)
    assert {t.title for t in tasks} == {
        f"Referral #{referral.pk}: first contact with the patient overdue",
        f"Referral #{referral.pk}: appointment overdue",
    }
    assert {t.assignee for t in tasks} == {coordinator}
    assert "Quackenbush" not in str([(t.title, t.details) for t in tasks])
    services.record_contact(referral, actor=coordinator, outcome="reached")
    check_service_levels.call()
    assert set(Task.objects.filter(referral=referral).values_list("status", flat=True)) == {"done", "open"}


def test_the_service_level_page_names_each_step_and_links_to_its_overdue_referrals(
    client_for, make_referral, service_line
):
    late = make_referral(service_line=service_line, received_at=timezone.now() - dt.timedelta(days=20))
    services.change_status(late, Status.ACCEPTED, actor="test")
    check_service_levels.call()
    c = client_for("coordinator")
    page = c.get("/referrals/service-levels/").content.decode()
    assert "First contact with the patient" in page and ">first_contact<" not in page
    link = "/referrals/?view=overdue&amp;step=first_contact"
    assert link in page
    assert f"#{late.pk}</small>" in c.get(link.replace("&amp;", "&")).content.decode()
    # Done: it leaves the overdue list at once, not at the next hourly check.
    services.record_contact(late, actor="test", outcome="reached")
    assert f"#{late.pk}</small>" not in c.get(link.replace("&amp;", "&")).content.decode()
    assert (
        f"#{late.pk}</small>"
        in c.get("/referrals/", {"view": "overdue", "step": "appointment"}).content.decode()
    )
