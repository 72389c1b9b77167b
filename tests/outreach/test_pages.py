"""Outreach pages: the phone form in one post, roles and their forbidden paths, pinned query
counts on the lists, the ledger report and CSV, the route, the calendar feed, collateral."""

import csv
import io
import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from liaison.directory.models import Contact
from liaison.outreach import services
from liaison.outreach.models import Account, Activity, LedgerEntry, Task, Tier
from tests.conftest import ROLES
from tests.outreach.conftest import local, lunch

READERS = ["admin", "manager", "liaison", "coordinator", "analyst"]
WRITERS = ["admin", "manager", "liaison", "coordinator"]


def form_data(account, office, our_doctors, **extra):
    data = {
        "kind": "lunch",
        "occurred_at": "2026-03-10T12:00",
        "status": "completed",
        "location": office.location.pk,
        "our_physicians": [d.pk for d in our_doctors],
        "providers": [office.dr_family.pk, office.dr_second.pk],
        "contacts": [office.nurse.pk],
        "new_1_first_name": "Rosa",
        "new_1_last_name": "Referral",
        "new_1_role": "referral_coordinator",
        "new_2_role": "other",
        "outcome": "They liked the same-day fracture slots",
        "cost": "120.00",
        "next_step": "Send the fax referral form",
        "follow_up_due": "2026-03-17",
        "follow_up_assignee": account.owner_id,
    }
    data.update(extra)
    return data


def test_a_lunch_is_logged_in_one_post_with_both_sides_a_new_person_and_a_task(
    client, account, office, our_doctors
):
    client.force_login(account.owner)
    url = reverse("outreach:activity_new") + f"?account={account.pk}"
    assert client.get(url).status_code == 200
    response = client.post(url, form_data(account, office, our_doctors))
    assert response.status_code == 302 and response["Location"] == reverse(
        "outreach:account", args=[account.pk]
    )
    activity = Activity.objects.get()
    assert activity.kind == "lunch" and activity.attendees.count() == 6
    assert Contact.objects.filter(
        first_name="Rosa", practice=office.practice, role="referral_coordinator"
    ).exists()
    task = Task.objects.get()
    assert (
        task.title == "Send the fax referral form"
        and task.due_on == date(2026, 3, 17)
        and task.assignee == account.owner
    )
    # $120 over four office people: $30 for each physician.
    assert set(LedgerEntry.objects.values_list("amount", flat=True)) == {Decimal("30.00")}
    page = client.get(response["Location"]).content.decode()
    assert "They liked the same-day fracture slots" in page and "Send the fax referral form" in page
    assert "$30.00" in page  # the physicians' totals on the account page


def test_a_form_error_keeps_everything_and_writes_nothing(client, account, office, our_doctors):
    client.force_login(account.owner)
    url = reverse("outreach:activity_new") + f"?account={account.pk}"
    response = client.post(url, form_data(account, office, our_doctors, cost="-3", follow_up_assignee=""))
    assert response.status_code == 200
    content = response.content.decode()
    assert "Ensure this value is greater than or equal to 0" in content and "Who does it?" in content
    assert 'value="Rosa"' in content
    assert not Activity.objects.exists() and not Contact.objects.filter(first_name="Rosa").exists()


def test_a_visit_without_a_next_step_saves_with_the_prefilled_due_date_and_makes_no_task(
    client, account, office
):
    client.force_login(account.owner)
    url = reverse("outreach:activity_new") + f"?account={account.pk}"
    form = client.get(url).context["form"]
    prefilled = form.initial["follow_up_due"]
    assert prefilled == timezone.localdate() + timedelta(days=7)
    response = client.post(
        url,
        {
            "kind": "visit",
            "occurred_at": "2026-03-10T10:00",
            "status": "completed",
            "location": office.location.pk,
            "providers": [office.dr_family.pk],
            "outcome": "Dropped off pads, short chat with Dr Family",
            "next_step": "",
            "follow_up_due": prefilled.isoformat(),
            "follow_up_assignee": account.owner_id,
            "new_1_role": "other",
            "new_2_role": "other",
        },
    )
    assert response.status_code == 302
    assert Activity.objects.get().outcome == "Dropped off pads, short chat with Dr Family"
    assert not Task.objects.exists()


def test_form_errors_are_listed_at_the_top_of_the_form(client, account, office, our_doctors):
    client.force_login(account.owner)
    url = reverse("outreach:activity_new") + f"?account={account.pk}"
    content = client.post(
        url, form_data(account, office, our_doctors, follow_up_assignee="", outcome="DOB 03/04/1956")
    ).content.decode()
    summary = content.index("Please correct:")
    assert summary < content.index('name="kind"')
    listed = content[summary : content.index('name="kind"')]
    assert 'href="#id_outcome"' in listed and "Who does it?" in listed and "Task for" in listed


def test_the_activity_form_refuses_patient_identifiers(client, account, office, our_doctors):
    client.force_login(account.owner)
    url = reverse("outreach:activity_new") + f"?account={account.pk}"
    data = form_data(
        account,
        office,
        our_doctors,
        outcome="Omar asked about patient Jane Roe, DOB 03/04/1956, MRN 448812",
        next_step="Call Casey re Jane Roe DOB 03/04/1956",
        clinical_questions="MRN 448812 imaging",
    )
    response = client.post(url, data)
    assert response.status_code == 200
    content = response.content.decode()
    assert content.count("Remove patient identifiers") >= 3 and "date of birth" in content
    assert not Activity.objects.exists() and not Task.objects.exists()


def test_task_and_account_forms_refuse_patient_identifiers(client, account):
    client.force_login(account.owner)
    response = client.post(
        reverse("outreach:task_new") + f"?account={account.pk}",
        {"title": "Call Casey", "details": "re Jane Roe DOB 03/04/1956", "due_on": "2026-04-01",
         "assignee": account.owner.pk},
    )  # fmt: skip
    assert response.status_code == 200 and b"date of birth" in response.content
    assert not Task.objects.exists()
    response = client.post(
        reverse("outreach:account_edit", args=[account.pk]), {"potential": "their patient MRN 448812"}
    )
    assert response.status_code == 200 and b"medical record number" in response.content
    response = client.post(
        reverse("outreach:account_stage", args=[account.pk]),
        {"stage": "lapsed", "reason": "lost Jane Roe DOB 03/04/1956"},
        follow=True,
    )
    assert b"date of birth" in response.content
    account.refresh_from_db()
    assert account.stage == "target" and account.potential == ""


def test_going_over_the_limit_asks_for_a_confirmation_on_the_form(client, account, office, our_doctors):
    lunch(account, office, our_doctors, when=local(2026, 2, 1), cost="2100.00")
    client.force_login(account.owner)
    url = reverse("outreach:activity_new") + f"?account={account.pk}"
    response = client.post(url, form_data(account, office, our_doctors))
    assert response.status_code == 200 and b"over the $535.00 limit" in response.content
    assert b"Record it anyway" in response.content
    response = client.post(url, form_data(account, office, our_doctors, confirm_over_limit="on"), follow=True)
    assert Activity.objects.count() == 2
    assert b"over the $535.00 limit" in response.content  # the warning is still shown once saved


def test_the_form_previews_limit_warnings_while_it_is_filled_in(client, account, office, our_doctors):
    lunch(account, office, our_doctors, when=local(2026, 2, 1), cost="1640.00")  # $410 each
    client.force_login(account.owner)
    url = reverse("outreach:activity_preview") + f"?account={account.pk}"
    response = client.post(url, form_data(account, office, our_doctors), headers={"HX-Request": "true"})
    assert b"warn-box" in response.content and b"of $535.00 in 2026" in response.content


def test_only_its_liaison_or_a_manager_edits_an_activity(client_for, account, office, our_doctors):
    a = lunch(
        account, office, our_doctors, when=local(2026, 3, 1), actor=account.owner, liaison=account.owner
    )
    other = client_for("liaison", email="other@example.org")
    assert other.get(reverse("outreach:activity_edit", args=[a.pk])).status_code == 403
    assert other.get(reverse("outreach:activity", args=[a.pk])).status_code == 200
    manager = client_for("manager")
    response = manager.post(
        reverse("outreach:activity_edit", args=[a.pk]),
        form_data(
            account,
            office,
            our_doctors,
            status="cancelled",
            new_1_first_name="",
            new_1_last_name="",
            follow_up_due="",
        ),
    )
    assert response.status_code == 302
    a.refresh_from_db()
    assert a.status == "cancelled" and not a.ledger_entries.exists()


@pytest.mark.parametrize("role", READERS)
def test_readers_see_the_outreach_pages(client_for, role, account, office, our_doctors):
    lunch(account, office, our_doctors, when=local(2026, 3, 1))
    c = client_for(role)
    for url in [
        reverse("outreach:today"),
        reverse("outreach:attention"),
        reverse("outreach:accounts"),
        reverse("outreach:account", args=[account.pk]),
        reverse("outreach:activities"),
        reverse("outreach:tasks"),
        reverse("outreach:ledger"),
        reverse("outreach:physicians"),
        reverse("outreach:physician", args=[our_doctors[0].pk]),
        reverse("outreach:collateral"),
        reverse("outreach:territories"),
        reverse("outreach:tiers"),
        reverse("outreach:map"),
        reverse("outreach:map_data"),
        reverse("outreach:ledger_provider", args=[office.dr_family.pk]),
    ]:
        assert c.get(url).status_code == 200, url


@pytest.mark.parametrize("role", ["analyst"])
def test_an_analyst_reads_but_cannot_write(client_for, role, account):
    c = client_for(role)
    for url in [
        reverse("outreach:activity_new") + f"?account={account.pk}",
        reverse("outreach:task_new"),
        reverse("outreach:route"),
        reverse("outreach:collateral_new"),
        reverse("outreach:account_add", args=[account.practice.pk]),
        reverse("outreach:territory_new"),
        reverse("outreach:ledger_limits"),
    ]:
        assert c.get(url).status_code == 403, url
    assert (
        c.post(
            reverse("outreach:account_stage", args=[account.pk]), {"stage": "lapsed", "reason": "x"}
        ).status_code
        == 403
    )


def test_a_physician_sees_their_tasks_and_lunches_only(client_for, account, office, our_doctors, liaison):
    c = client_for("physician", provider=our_doctors[0])
    attended = lunch(account, office, our_doctors[:1], when=local(2026, 3, 1))
    not_attended = lunch(account, office, our_doctors[1:], when=local(2026, 3, 2))
    services.create_task(
        actor=liaison, title="Call Dr Family back", due_on=date(2026, 3, 5), assignee=c.user, account=account
    )
    home = c.get(reverse("outreach:today")).content.decode()
    assert "Call Dr Family back" in home and "My outreach" in home
    assert c.get(reverse("outreach:activity", args=[attended.pk])).status_code == 200
    assert c.get(reverse("outreach:activity", args=[not_attended.pk])).status_code == 404
    assert c.get(reverse("outreach:physician", args=[our_doctors[0].pk])).status_code == 200
    assert c.get(reverse("outreach:physician", args=[our_doctors[1].pk])).status_code == 403
    for url in [
        reverse("outreach:accounts"),
        reverse("outreach:account", args=[account.pk]),
        reverse("outreach:activities"),
        reverse("outreach:ledger"),
        reverse("outreach:map"),
        reverse("outreach:attention"),
        reverse("feedback:issues"),
        reverse("outreach:activity_new"),
    ]:
        assert c.get(url).status_code == 403, url
    task = Task.objects.get()
    response = c.post(reverse("outreach:task_status", args=[task.pk]), {"action": "done"})
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.status == "done"


def test_only_the_owner_or_a_manager_changes_an_account(client_for, account):
    other = client_for("liaison", email="other@example.org")
    assert other.get(reverse("outreach:account_edit", args=[account.pk])).status_code == 403
    assert (
        other.post(reverse("outreach:account_stage", args=[account.pk]), {"stage": "engaged"}).status_code
        == 403
    )
    coordinator = client_for("coordinator")
    assert coordinator.get(reverse("outreach:account_edit", args=[account.pk])).status_code == 403
    manager = client_for("manager")
    tier_a = Tier.objects.get(code="A")
    response = manager.post(
        reverse("outreach:account_edit", args=[account.pk]),
        {"tier": tier_a.pk, "owner": "", "potential": "big"},
    )
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.tier == tier_a and account.owner is None and account.potential == "big"


def test_the_owner_changes_the_stage_with_a_reason(client, account):
    client.force_login(account.owner)
    url = reverse("outreach:account_stage", args=[account.pk])
    client.post(url, {"stage": "lapsed", "reason": ""})
    account.refresh_from_db()
    assert account.stage == "target"  # a lapse needs a reason
    client.post(url, {"stage": "lapsed", "reason": "moved to a competitor"})
    account.refresh_from_db()
    assert account.stage == "lapsed"


def test_a_practice_is_added_to_the_pipeline_from_its_directory_page(client, office, liaison):
    client.force_login(liaison)
    page = client.get(reverse("directory:practice", args=[office.practice.pk])).content.decode()
    assert "Add to pipeline" in page
    response = client.post(
        reverse("outreach:account_add", args=[office.practice.pk]),
        {"tier": "", "location": "", "note": "new"},
    )
    account = Account.objects.get()
    assert response["Location"] == reverse("outreach:account", args=[account.pk])
    assert account.owner == liaison  # a liaison who adds an account owns it
    page = client.get(reverse("directory:practice", args=[office.practice.pk])).content.decode()
    assert "Outreach: Maple Family Medicine" in page


# Query counts ----------------------------------------------------------------------------------------


def _more_accounts(n, make_user):
    from liaison.directory import services as directory

    owner = make_user("liaison", email=f"owner{n}@example.org")
    for i in range(n):
        p = directory.create_practice(actor="t", name=f"Practice {n}-{i}")
        directory.create_location(
            p, actor="t", address_line1="1 A", city="Columbus", state="OH", zip_code="43215"
        )
        a = services.add_to_pipeline(p, actor="t", owner=owner, tier=Tier.objects.get(code="A"))
        services.log_activity(actor=owner, account=a, kind="visit", occurred_at=local(2026, 1, 1 + i))
        services.create_task(actor=owner, title=f"T{i}", due_on=date(2026, 1, 1), assignee=owner, account=a)


@pytest.mark.parametrize(
    ("url", "queries"),
    # +1: a manager sees the referral counts in the navigation.
    [
        ("/outreach/accounts/", 8),
        ("/outreach/accounts/?stage=engaged&owner=none&q=practice", 7),
        ("/outreach/activities/", 9),
        ("/outreach/tasks/?assignee=", 6),
        ("/outreach/attention/?owner=", 11),
        ("/outreach/ledger/", 7),
        ("/outreach/physicians/", 5),
        ("/outreach/collateral/", 4),
        ("/outreach/", 13),
        ("/outreach/map/", 5),
        ("/outreach/route/", 5),
        ("/feedback/issues/", 6),
        ("/feedback/surveys/", 7),
    ],
)
def test_list_pages_do_a_fixed_number_of_queries(
    client_for, make_user, django_assert_num_queries, url, queries, our_doctors
):
    c = client_for("manager")
    _more_accounts(2, make_user)
    c.get(url)
    with django_assert_num_queries(queries):
        assert c.get(url).status_code == 200
    _more_accounts(5, make_user)
    with django_assert_num_queries(queries):
        assert c.get(url).status_code == 200


def test_the_account_page_does_a_fixed_number_of_queries(
    client_for, account, office, our_doctors, django_assert_num_queries
):
    c = client_for("manager")
    lunch(account, office, our_doctors, when=local(2026, 3, 1))
    c.get(reverse("outreach:account", args=[account.pk]))
    with django_assert_num_queries(22) as first:
        c.get(reverse("outreach:account", args=[account.pk]))
    for day in range(2, 8):
        lunch(account, office, our_doctors, when=local(2026, 3, day), cost="20")
    with django_assert_num_queries(len(first.captured_queries)):
        c.get(reverse("outreach:account", args=[account.pk]))


def test_the_account_page_leads_to_its_people_and_their_referrals(client_for, account, office):
    from liaison.directory import services as directory

    directory.create_contact(
        office.practice, actor="test", first_name="Emily", last_name="Hayes", role="referral_coordinator",
        phone="614-555-0160", email="emily@maple.example", location=office.location,
    )  # fmt: skip
    page = client_for("liaison").get(reverse("outreach:account", args=[account.pk])).content.decode()
    assert 'href="tel:(614) 555-0160"' in page and 'href="mailto:emily@maple.example"' in page
    for provider in (office.dr_family, office.dr_second):
        assert reverse("directory:provider", args=[provider.pk]) in page
        assert reverse("analytics:referrer", args=[provider.pk]) in page


# Ledger report -----------------------------------------------------------------------------------------


def test_the_compliance_report_and_its_csv(client_for, account, office, our_doctors):
    lunch(account, office, our_doctors, when=local(2026, 2, 1), cost="1720.00")  # $430: 81 %
    c = client_for("analyst")
    page = c.get(reverse("outreach:ledger"), {"year": 2026}).content.decode()
    assert "Frank Family, MD" in page and "81 %" in page and "$535.00" in page
    response = c.get(reverse("outreach:ledger"), {"year": 2026, "format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert {r["physician"] for r in rows} == {"Family, Frank", "Second, Sam"}
    assert rows[0]["spent"] == "430.00" and rows[0]["limit"] == "535.00" and rows[0]["status"] == "warning"
    assert rows[0]["practices"] == "Maple Family Medicine"


def test_only_an_admin_sets_the_yearly_limit(client_for):
    assert client_for("manager").get(reverse("outreach:ledger_limits")).status_code == 403
    admin = client_for("admin")
    response = admin.post(
        reverse("outreach:ledger_limits"), {"year": 2027, "amount": "550.00", "note": "CMS CY2027"}
    )
    assert response.status_code == 302
    assert b"$550.00" in admin.get(reverse("outreach:ledger_limits")).content


# Territories, tiers -------------------------------------------------------------------------------------


def test_a_manager_draws_a_territory_and_its_accounts_follow(client_for, office, make_user):
    lee = make_user("liaison", email="lee@example.org")
    account = services.add_to_pipeline(office.practice, actor="t")
    c = client_for("manager")
    response = c.post(
        reverse("outreach:territory_new"),
        {"name": "Central", "liaison": lee.pk, "zip_codes": "43212, 43215", "counties": ""},
    )
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.owner == lee
    bad = c.post(
        reverse("outreach:territory_new"),
        {"name": "Other", "liaison": "", "zip_codes": "43212", "counties": "Nowhere, OH"},
    )
    assert b"43212 already in Central." in bad.content and b"is not a county of OH" in bad.content
    assert client_for("liaison").get(reverse("outreach:territory_new")).status_code == 403


def test_a_manager_changes_a_tiers_cadence(client_for):
    tier = Tier.objects.get(code="C")
    c = client_for("manager")
    data = {
        "form-TOTAL_FORMS": "2",
        "form-INITIAL_FORMS": "1",
        "form-MIN_NUM_FORMS": "0",
        "form-MAX_NUM_FORMS": "3",
        "form-0-touch": "any",
        "form-0-every": "60",
        "form-0-unit": "day",
        "form-1-touch": "lunch",
        "form-1-every": "1",
        "form-1-unit": "quarter",
    }
    assert c.post(reverse("outreach:tier_edit", args=[tier.pk]), data).status_code == 302
    assert sorted(str(r) for r in tier.rules.all()) == ["lunch every calendar quarter", "touch every 60 days"]


# Tasks --------------------------------------------------------------------------------------------------


def test_a_task_is_marked_done_with_htmx(client, account):
    t = services.create_task(
        actor="t", title="Bring pads", due_on=timezone.localdate(), assignee=account.owner, account=account
    )
    client.force_login(account.owner)
    response = client.post(
        reverse("outreach:task_status", args=[t.pk]), {"action": "done"}, headers={"HX-Request": "true"}
    )
    assert b"Reopen" in response.content and b"<html" not in response.content
    t.refresh_from_db()
    assert t.status == "done"


def test_after_a_task_change_next_only_leads_back_into_the_site(client, account):
    t = services.create_task(
        actor="t", title="Bring pads", due_on=timezone.localdate(), assignee=account.owner, account=account
    )
    client.force_login(account.owner)
    url = reverse("outreach:task_status", args=[t.pk])
    away = client.post(url, {"action": "done", "next": "https://evil.example/phish"})
    assert away["Location"] == reverse("outreach:tasks")
    back = client.post(url, {"action": "reopen", "next": "/outreach/"})
    assert back["Location"] == "/outreach/"


def test_a_task_row_links_to_its_page_shows_its_details_and_an_old_due_dates_year(client, account):
    today = timezone.localdate()
    old = services.create_task(
        actor="t",
        title="Referrals cooling: Maple Family Medicine",
        details="Maple Family Medicine averaged 6.0 referrals a month; 1 in the last 90 days. " * 3,
        due_on=date(today.year - 1, 2, 9),
        assignee=account.owner,
        account=account,
    )
    soon = services.create_task(
        actor="t", title="Bring pads", due_on=today + timedelta(days=1), assignee=account.owner
    )
    client.force_login(account.owner)
    page = client.get(reverse("outreach:today")).content.decode()
    row = page[page.index(f'id="task-{old.pk}"') :].split("</tr>")[0]
    assert f'href="{reverse("outreach:task_edit", args=[old.pk])}"' in row
    assert "averaged 6.0 referrals a month" in row and "…" in row  # truncated
    assert f"Feb 9, {today.year - 1}" in row
    soon_row = page[page.index(f'id="task-{soon.pk}"') :].split("</tr>")[0]
    assert (today + timedelta(days=1)).strftime("%b ") + str((today + timedelta(days=1)).day) in soon_row
    if (today + timedelta(days=1)).year == today.year:
        assert f", {today.year}" not in soon_row
    detail = client.get(reverse("outreach:task_edit", args=[old.pk])).content.decode()
    assert old.details.strip() in detail and 'name="title"' in detail


def test_a_task_page_is_read_only_for_those_who_may_not_change_it(client_for, account):
    t = services.create_task(
        actor="t", title="Bring pads", details="the blue ones", due_on=timezone.localdate(),
        assignee=account.owner, account=account,
    )  # fmt: skip
    url = reverse("outreach:task_edit", args=[t.pk])
    for c in (client_for("analyst"), client_for("liaison", email="colleague@example.org")):
        page = c.get(url)
        assert page.status_code == 200 and b"the blue ones" in page.content
        assert b'name="title"' not in page.content
        assert c.post(url, {"title": "x"}).status_code == 403


def test_a_cadence_task_is_closed_by_logging_the_visit_or_skipped_never_just_done(client, account, office):
    task = services.create_task(
        actor="cadence job",
        title="Visit Maple Family Medicine (Tier B: visit every 60 days)",
        due_on=timezone.localdate(),
        assignee=account.owner,
        account=account,
        kind="cadence",
        cadence_touch="in_person",
    )
    client.force_login(account.owner)
    page = client.get(reverse("outreach:today")).content.decode()
    row = page[page.index(f'id="task-{task.pk}"') :].split("</tr>")[0]
    log_url = reverse("outreach:activity_new") + f"?account={account.pk}&amp;kind=visit"
    assert f'href="{log_url}"' in row and "Log the visit" in row
    assert 'value="done"' not in row and 'value="cancel"' in row and "Skip" in row
    form = client.get(log_url.replace("&amp;", "&"))
    assert form.context["form"]["kind"].value() == "visit"
    response = client.post(
        log_url.replace("&amp;", "&"),
        {
            "kind": "visit", "occurred_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"), "status": "completed",
            "location": office.location.pk, "providers": [office.dr_family.pk], "new_1_role": "other",
            "new_2_role": "other",
        },
    )  # fmt: skip
    assert response.status_code == 302 and Activity.objects.count() == 1
    task.refresh_from_db()
    assert task.status == "done"  # the logged visit closed it

    skipped = services.create_task(
        actor="cadence job", title="Lunch at Maple", due_on=timezone.localdate(), assignee=account.owner,
        account=account, kind="cadence", cadence_touch="lunch",
    )  # fmt: skip
    page = client.get(reverse("outreach:today")).content.decode()
    assert "Log the lunch" in page and f"?account={account.pk}&amp;kind=lunch" in page
    client.post(reverse("outreach:task_status", args=[skipped.pk]), {"action": "cancel"})
    skipped.refresh_from_db()
    assert skipped.status == "cancelled" and Activity.objects.count() == 1


def test_nobody_else_closes_someone_elses_task(client_for, account):
    t = services.create_task(
        actor="t", title="Bring pads", due_on=timezone.localdate(), assignee=account.owner
    )
    c = client_for("coordinator")
    assert c.post(reverse("outreach:task_status", args=[t.pk]), {"action": "done"}).status_code == 403


# Route, calendar, collateral --------------------------------------------------------------------------------


def test_a_day_route_is_computed_and_exported_to_a_phone_calendar(client, account, office, site, liaison):
    from liaison.directory import services as directory

    p2 = directory.create_practice(actor="t", name="Oak Pediatrics")
    directory.create_location(
        p2, actor="t", address_line1="9 Oak", city="Westerville", state="OH", zip_code="43081"
    )
    second = services.add_to_pipeline(p2, actor="t", owner=liaison)
    client.force_login(liaison)
    params = {
        "day": "2026-05-05", "start_site": site.pk, "day_start": "08:00", "day_end": "17:00", "visit_minutes": "20",
        "lunch_from": "11:30", "lunch_to": "12:30", "lunch_minutes": "60", "return_to_start": "on",
        "stop": [account.pk, second.pk], "lunch": [second.pk],
    }  # fmt: skip
    page = client.get(reverse("outreach:route"), params).content.decode()
    assert "2 stops" in page and "Oak Pediatrics" in page
    ics = client.get(reverse("outreach:route"), {**params, "format": "ics"})
    assert ics["Content-Type"].startswith("text/calendar")
    body = ics.content.decode()
    assert body.count("BEGIN:VEVENT") == 2 and "Lunch: Oak Pediatrics" in body
    from icalendar import Calendar

    events = [e for e in Calendar.from_ical(ics.content).walk("VEVENT")]
    lunch_event = next(e for e in events if "Lunch:" in str(e["summary"]))
    start = lunch_event.decoded("dtstart").astimezone(timezone.get_current_timezone())
    assert "11:30" <= start.strftime("%H:%M") <= "12:30"
    response = client.post(reverse("outreach:route_plan"), params)
    assert response.status_code == 302
    assert set(Activity.objects.values_list("status", flat=True)) == {"planned"}
    assert Activity.objects.get(account=second).kind == "lunch"


def test_a_lunch_ticked_alone_is_a_stop_and_an_office_off_the_map_is_named(
    client, account, office, site, liaison
):
    from liaison.directory import services as directory
    from liaison.directory.models import Location

    p2 = directory.create_practice(actor="t", name="Oak Pediatrics")
    directory.create_location(
        p2, actor="t", address_line1="9 Oak", city="Westerville", state="OH", zip_code="43081"
    )
    lunch_only = services.add_to_pipeline(p2, actor="t", owner=liaison)
    p3 = directory.create_practice(actor="t", name="Nowhere Clinic")
    lost = directory.create_location(
        p3, actor="t", address_line1="1 Lost Rd", city="Columbus", state="OH", zip_code="43215"
    )
    Location.objects.filter(pk=lost.pk).update(latitude=None, longitude=None)
    off_map = services.add_to_pipeline(p3, actor="t", owner=liaison)
    client.force_login(liaison)
    params = {
        "day": "2026-05-05", "start_site": site.pk, "day_start": "08:00", "day_end": "17:00", "visit_minutes": "20",
        "lunch_from": "11:30", "lunch_to": "12:30", "lunch_minutes": "60", "return_to_start": "on",
        "stop": [account.pk, off_map.pk], "lunch": [lunch_only.pk],
    }  # fmt: skip
    page = client.get(reverse("outreach:route"), params).content.decode()
    assert "2 stops" in page and "Oak Pediatrics" in page and "lunch</span>" in page
    assert "Left out, as their office has no map position" in page and "Nowhere Clinic" in page


def test_the_route_form_says_what_is_missing(client, liaison):
    client.force_login(liaison)
    page = client.get(reverse("outreach:route"), {"day": "2026-05-05", "day_start": "08:00", "day_end": "07:00", "visit_minutes": "20",
                                                 "lunch_from": "11:30", "lunch_to": "12:30", "lunch_minutes": "60"}).content.decode()  # fmt: skip
    assert "give your home ZIP code" in page and "The day must end after it starts." in page
    assert "Pick at least one account" not in page


def test_the_calendar_feed_shows_planned_visits_and_tasks_at_a_revocable_token_url(client, account, liaison):
    when = timezone.now() + timedelta(days=2)
    services.log_activity(actor=liaison, account=account, kind="lunch", occurred_at=when)
    services.create_task(
        actor=liaison,
        title="Send pads to Casey",
        details="she asked twice",
        due_on=timezone.localdate() + timedelta(days=3),
        assignee=liaison,
        account=account,
    )
    services.create_task(
        actor=liaison, title="Renew badge", due_on=timezone.localdate() + timedelta(days=4), assignee=liaison
    )
    client.force_login(liaison)
    page = client.post(reverse("outreach:calendar"), {"action": "create"}).content.decode()
    url = page.split('id="feed-url"')[0].rsplit('value="', 1)[1].split('"')[0]
    path = url.split("testserver", 1)[1]
    anonymous = type(client)()
    feed = anonymous.get(path)
    assert feed.status_code == 200 and feed["Content-Type"].startswith("text/calendar")
    body = feed.content.decode()
    assert "Lunch / in-service: Maple Family Medicine" in body
    # A task is the office (or nothing) and its date: never the words typed into it.
    assert "Task: Maple Family Medicine" in body and "Task (details in Liaison)" in body
    assert "pads" not in body and "Casey" not in body and "badge" not in body and "asked" not in body
    client.post(reverse("outreach:calendar"), {"action": "revoke"})
    assert anonymous.get(path).status_code == 404


def test_collateral_is_uploaded_downloaded_and_tracked(client_for, account, office, settings, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.MEDIA_ROOT = tmp_path
    c = client_for("liaison")
    response = c.post(reverse("outreach:collateral_new"), {"title": "Fax form", "kind": "fax_form", "description": "", "is_active": "on",
                                                           "file": SimpleUploadedFile("fax.pdf", b"%PDF-1.4 x")})  # fmt: skip
    assert response.status_code == 302
    item = services.CollateralItem.objects.get()
    assert c.get(reverse("outreach:collateral_file", args=[item.pk])).getvalue() == b"%PDF-1.4 x"
    services.log_activity(actor=c.user, account=account, kind="drop_in", materials={item: 3})
    page = c.get(reverse("outreach:collateral_item", args=[item.pk])).content.decode()
    assert "Maple Family Medicine" in page
    bad = c.post(
        reverse("outreach:collateral_new"),
        {"title": "Bad", "kind": "other", "file": SimpleUploadedFile("x.exe", b"MZ")},
    )
    assert b"upload a PDF" in bad.content


@pytest.mark.parametrize("role", ROLES)
def test_no_outreach_page_answers_with_an_error(client_for, role, account):
    c = client_for(role)
    for url in [reverse("outreach:today"), reverse("outreach:tasks"), reverse("outreach:calendar")]:
        assert c.get(url).status_code in (200, 403), url


def test_the_map_works_without_tiles_and_uses_the_configured_tile_server(client_for, account, site, settings):
    c = client_for("liaison")
    page = c.get(reverse("outreach:map")).content.decode()
    assert 'data-tiles=""' in page and "No map tiles are configured" in page
    assert '"name": "Maple Family Medicine"' in page and '"stage": "target"' in page
    data = c.get(reverse("outreach:map_data")).json()
    assert data["accounts"][0]["lat"] == pytest.approx(39.98, abs=0.05) and data["sites"][0]["name"].endswith(
        "Downtown"
    )
    settings.MAP_TILE_URL = "https://tiles.example.org/{z}/{x}/{y}.png"
    assert (
        'data-tiles="https://tiles.example.org/{z}/{x}/{y}.png"'
        in c.get(reverse("outreach:map")).content.decode()
    )


def test_the_map_gives_leaflet_its_marker_images_from_the_vendored_assets(client_for, site, settings):
    import re
    from pathlib import Path

    from django.contrib.staticfiles import finders

    from liaison.core.assets import ASSETS

    page = client_for("liaison").get(reverse("outreach:map")).content.decode()
    fetched = {f"vendor/{dest}" for a in ASSETS if a.package == "leaflet" for dest in a.files.values()}
    for attribute, name in [
        ("data-marker-icon", "marker-icon.png"),
        ("data-marker-icon-2x", "marker-icon-2x.png"),
        ("data-marker-shadow", "marker-shadow.png"),
    ]:
        url = re.search(rf'{attribute}="([^"]+)"', page).group(1)
        assert url == settings.STATIC_URL + f"vendor/leaflet/images/{name}"
        path = url.removeprefix(settings.STATIC_URL)
        assert path in fetched  # `make assets` extracts it from the verified leaflet tarball
        if (Path(finders.find("vendor/leaflet/leaflet.js") or "")).exists():
            assert finders.find(path), f"{path} is missing from the vendored leaflet"
    js = Path(finders.find("liaison/map.js")).read_text()
    assert 'L.Icon.Default.imagePath = ""' in js
    for key in ("markerIcon", "markerIcon2x", "markerShadow"):
        assert f"el.dataset.{key}" in js


def test_a_time_ahead_on_the_form_makes_a_planned_lunch(client, account, office, our_doctors):
    client.force_login(account.owner)
    when = (timezone.localtime() + timedelta(days=3)).strftime("%Y-%m-%dT12:00")
    url = reverse("outreach:activity_new") + f"?account={account.pk}"
    client.post(
        url,
        form_data(
            account,
            office,
            our_doctors,
            occurred_at=when,
            new_1_first_name="",
            new_1_last_name="",
            follow_up_due="",
        ),
    )
    assert Activity.objects.get().status == "planned"


def test_today_starts_with_the_day_s_plan_and_lists_the_most_urgent_tasks_only(client, account, liaison):
    from liaison.outreach.views import TODAY_TASKS

    now = timezone.localtime()
    later_today = now.replace(hour=23, minute=30) if now.hour < 23 else now + timedelta(minutes=20)
    services.log_activity(
        actor=liaison,
        account=account,
        kind="lunch",
        occurred_at=later_today,
        status="planned",
        liaison=liaison,
    )
    services.log_activity(
        actor=liaison,
        account=account,
        kind="visit",
        occurred_at=now + timedelta(days=3),
        status="planned",
        liaison=liaison,
    )
    for i in range(TODAY_TASKS + 3):
        services.create_task(
            actor=liaison,
            title=f"Task {i:02d}",
            due_on=timezone.localdate(),
            assignee=liaison,
            account=account,
        )
    client.force_login(liaison)
    page = client.get(reverse("outreach:today")).content.decode()
    plan = page.split('id="plan-today"')[1].split("</ul>")[0]
    assert "Lunch" in plan and "Visit" not in plan  # the visit in three days is under "Coming up"
    assert page.index('id="plan-today"') < page.index("Needs attention") < page.index("Coming up")
    assert len(set(re.findall(r"Task \d\d", page))) == TODAY_TASKS and "All my tasks" in page
