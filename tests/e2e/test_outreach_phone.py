"""On a phone in a car park: a liaison logs a lunch with two of our physicians and four people
from the office (two physicians, a nurse, and a referral coordinator met on the spot) in one
form, with a follow-up task, then sees the account's timeline and the physicians' ledger totals."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from liaison.accounts.models import User
from liaison.directory import services as directory
from liaison.directory.models import Contact
from liaison.outreach import services
from liaison.outreach.models import Activity, LedgerEntry, Task
from tests.conftest import PASSWORD, make_npi

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def office_world(db):
    from liaison.directory.taxonomy import load_builtin

    load_builtin()  # the browser tests flush the database, migrations' data included
    services.ensure_reference_data()
    ours = directory.create_practice(actor="test", name="Scioto Test Orthopaedics", is_ours=True)
    site = directory.create_location(
        ours,
        actor="test",
        name="Downtown",
        address_line1="1 Main St",
        city="Columbus",
        state="OH",
        zip_code="43215",
    )
    docs = [
        directory.create_provider(actor="test", first_name=first, last_name=last, credential="MD", npi=make_npi(500 + i), is_ours=True,
                                  primary_taxonomy_code="207X00000X", locations=[site])
        for i, (first, last) in enumerate([("Olivia", "Bone"), ("Hugo", "Hip"), ("Sara", "Spine")])
    ]  # fmt: skip
    practice = directory.create_practice(actor="test", name="Maple Family Medicine")
    loc = directory.create_location(
        practice, actor="test", address_line1="10 Oak Ave", city="Columbus", state="OH", zip_code="43212"
    )
    family = directory.create_provider(actor="test", first_name="Frank", last_name="Family", credential="MD", npi=make_npi(510),
                                       primary_taxonomy_code="207Q00000X", locations=[loc])  # fmt: skip
    internist = directory.create_provider(actor="test", first_name="Ida", last_name="Internist", credential="DO", npi=make_npi(511),
                                          primary_taxonomy_code="207R00000X", locations=[loc])  # fmt: skip
    nurse = directory.create_contact(
        practice, actor="test", first_name="Nora", last_name="Nurse", role="nurse"
    )
    liaison = User.objects.create_user("lee@example.org", PASSWORD, full_name="Lee Liaison", role="liaison")
    account = services.add_to_pipeline(practice, actor="test", owner=liaison)
    return {
        "docs": docs,
        "family": family,
        "internist": internist,
        "nurse": nurse,
        "liaison": liaison,
        "account": account,
    }


def test_a_liaison_logs_a_lunch_with_both_sides_on_a_phone(phone, office_world):
    w = office_world
    page = phone
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill("lee@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Outreach").click()
    expect(page.get_by_role("heading", name="Today", exact=True)).to_be_visible()

    page.get_by_role("link", name="Accounts", exact=True).click()
    page.get_by_role("link", name="Maple Family Medicine").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Maple Family Medicine")
    page.get_by_role("button", name="Log a lunch").click()

    # One form: kind, both sides, cost, the next step as a task.
    expect(page.get_by_label("Lunch / in-service")).to_be_checked()
    ours = page.locator("#our-side")
    ours.get_by_label("Olivia Bone, MD").check()
    ours.get_by_label("Hugo Hip, MD").check()
    theirs = page.locator("#their-side")
    theirs.get_by_label("Frank Family, MD").check()
    theirs.get_by_label("Ida Internist, DO").check()
    theirs.get_by_label("Nora Nurse").check()
    page.get_by_text("Met someone new?").click()
    page.locator("#id_new_1_first_name").fill("Rita")
    page.locator("#id_new_1_last_name").fill("Referral")
    page.locator("#id_new_1_role").select_option("referral_coordinator")
    page.get_by_label("Outcome").fill("They will send knees to our same-day clinic")
    page.get_by_label("Cost ($)").fill("96.00")
    page.get_by_label("Next step").fill("Send Dr Family the knee pathway")
    page.get_by_label("Task due").fill((timezone.localdate() + timedelta(days=5)).isoformat())
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, overflow
    page.get_by_role("button", name="Save").click()

    # Back on the account: the timeline and the physicians' ledger totals.
    expect(page.locator(".messages")).to_contain_text("Logged: lunch / in-service at Maple Family Medicine")
    timeline = page.locator("#timeline")
    expect(timeline).to_contain_text("Lunch / in-service")
    for name in [
        "Olivia Bone, MD",
        "Hugo Hip, MD",
        "Frank Family, MD",
        "Ida Internist, DO",
        "Nora Nurse",
        "Rita Referral",
    ]:
        expect(timeline).to_contain_text(name)
    expect(timeline).to_contain_text("Next: Send Dr Family the knee pathway")
    ledger = page.locator("#ledger")
    expect(ledger.locator(".ledger-row", has_text="Frank Family, MD")).to_contain_text("$24.00")
    expect(ledger.locator(".ledger-row", has_text="Ida Internist, DO")).to_contain_text("$24.00")
    expect(page.locator("#tasks")).to_contain_text("Send Dr Family the knee pathway")
    expect(page.locator("#stage")).to_have_text("Engaged")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, overflow

    activity = Activity.objects.get()
    assert activity.attendees.count() == 6 and activity.liaison == w["liaison"]
    assert Contact.objects.get(first_name="Rita").role == "referral_coordinator"
    assert sorted(LedgerEntry.objects.values_list("provider__last_name", flat=True)) == [
        "Family",
        "Internist",
    ]
    assert Task.objects.get().assignee == w["liaison"]

    # The task is done from the Today page, on the phone.
    page.get_by_role("link", name="Today").click()
    page.get_by_role("button", name=re.compile("Mark done: Send Dr Family")).click()
    expect(page.locator("#tasks")).to_contain_text("done")
    assert Task.objects.get().status == "done"
