"""A coordinator takes a referral from the intake form to the consult note; the timeline shows each
step and the letter sent to the referring office at each milestone. A liaison who opens the same
URL is refused and the refusal is in the audit trail."""

import re

import pytest
from playwright.sync_api import expect

from liaison.audit.models import AuditEvent
from liaison.referrals.models import Notification, Referral
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def sign_in(page, email: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("link", name="Liaison")).to_be_visible()


def test_a_coordinator_takes_a_referral_to_the_consult_note(
    page, browser, live_server, make_user, referring_provider, site, our_physician
):
    make_user("coordinator", email="casey@example.org")
    make_user("liaison", email="lee@example.org")
    sign_in(page, "casey@example.org")

    page.get_by_role("link", name="Referrals").click()
    page.get_by_role("button", name="New referral").click()
    page.get_by_label("Patient first name").fill("Marta")
    page.get_by_label("Patient last name").fill("Oyelaran")
    page.get_by_label("Date of birth").fill("1958-03-14")
    page.get_by_label("Referring provider").fill(referring_provider.npi)
    page.get_by_label("Our site").select_option(label=str(site))
    page.get_by_label("Our physician").select_option(label=our_physician.display_name)
    page.get_by_label("Reason for referral").fill("Left hip pain, arthritis on X-ray")
    page.get_by_role("button", name="Save referral").click()
    expect(page.locator("#status")).to_have_text("Received")
    referral = Referral.objects.get()
    detail_url = page.url

    page.get_by_role("button", name="Accept", exact=True).click()
    expect(page.locator("#status")).to_have_text("Accepted")
    page.locator("input[name=appointment_at]").fill("2030-05-06T09:30")
    page.get_by_role("button", name="Schedule", exact=True).click()
    expect(page.locator("#status")).to_have_text("Scheduled")
    page.get_by_role("button", name="Mark seen").click()
    expect(page.locator("#status")).to_have_text("Seen")
    page.get_by_label("Note sent by").select_option("fax")
    page.get_by_label("Consult note").check()
    page.get_by_label("Recommendations").check()
    page.get_by_role("button", name="Record the consult note sent").click()
    expect(page.locator("#status")).to_have_text("Consult note sent")

    timeline = page.locator("#timeline")
    for step in ["Received", "Accepted", "Scheduled", "Seen", "Consult note sent"]:
        expect(timeline).to_contain_text(step)
    for milestone in ["received", "scheduled", "seen", "consult note sent"]:
        expect(timeline).to_contain_text(f"Letter to the office prepared ({milestone}): ready to fax or mail")
    assert list(Notification.objects.filter(referral=referral).values_list("milestone", flat=True)) == [
        "received",
        "scheduled",
        "seen",
        "note_sent",
    ]
    letter = page.get_by_role("link", name="letter (PDF)").first
    response = page.request.get(letter.get_attribute("href"))
    assert response.headers["content-type"] == "application/pdf"
    # Faxed: now the office has been told, and the timeline says so.
    page.get_by_role("button", name="Faxed or mailed").first.click()
    expect(timeline).to_contain_text("Letter to the office faxed or mailed (received)")
    assert Notification.objects.get(referral=referral, milestone="received").sent_at is not None

    # The liaison opens the same URL: refused, and the audit trail shows it.
    other = browser.new_context(base_url=live_server.url)
    liaison_page = other.new_page()
    sign_in(liaison_page, "lee@example.org")
    response = liaison_page.goto(detail_url)
    assert response.status in (403, 404)
    expect(liaison_page.locator("body")).not_to_contain_text("Oyelaran")
    other.close()
    denied = AuditEvent.objects.get(action="denied", actor__email="lee@example.org")
    assert denied.object_id == str(referral.pk)


def test_searching_the_queue_for_a_patient_keeps_the_name_out_of_the_address_bar(
    page, live_server, make_user, referring_provider, site, our_physician
):
    from liaison.referrals import services
    from liaison.referrals.services import ReferrerInfo
    from tests.referrals.conftest import PATIENT

    for last_name in ("Oyelaran", "Quackenbush"):
        services.receive_referral(
            actor="test",
            referrer=ReferrerInfo(npi=referring_provider.npi),
            **{
                **PATIENT,
                "patient_last_name": last_name,
                "site": site,
                "referred_to_physician": our_physician,
            },
        )
    make_user("coordinator", email="casey@example.org")
    sign_in(page, "casey@example.org")
    page.get_by_role("link", name="Referrals").click()
    results = page.locator("#results")
    expect(results).to_contain_text("Quackenbush")
    page.get_by_label("Patient last name").fill("Oyelaran")
    expect(results).not_to_contain_text("Quackenbush")
    expect(results).to_contain_text("Oyelaran")
    page.get_by_label("Urgency").select_option("routine")
    expect(page).to_have_url(re.compile(r"urgency=routine"))
    assert "oyelaran" not in page.url.lower()
    expect(results).to_contain_text("Oyelaran")
    expect(results).not_to_contain_text("Quackenbush")
