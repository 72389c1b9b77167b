"""A new user's first minutes, as the README promises: demo data, sign in with the printed
credentials, find a provider by name and by ZIP radius, open a practice, add a contact."""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from liaison.accounts.demo import DEMO_PASSWORD, DEMO_USERS
from liaison.directory.models import Contact, Location, Provider

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def sign_in(page, email: str, password: str) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Scioto Valley Orthopaedics")


def test_a_new_user_finds_providers_opens_a_practice_and_adds_a_contact(page, demo):
    # The printed credentials work.
    liaison_email = next(email for email, _, role in DEMO_USERS if role == "liaison")
    assert liaison_email in demo and DEMO_PASSWORD in demo
    sign_in(page, liaison_email, DEMO_PASSWORD)

    # Find a provider by name: live search, no page reload.
    target = Provider.objects.referring().exclude(locations=None).order_by("-last_name")[5]
    page.get_by_role("link", name="Providers").first.click()
    page.get_by_label("Name or NPI").fill(f"{target.first_name} {target.last_name}")
    results = page.locator("#results table.results")
    expect(results.get_by_role("link", name=target.display_name)).to_be_visible()
    expect(page).to_have_url(re.compile(r"q="))

    # By ZIP radius: within 5 miles of our North site, nearest first, with the distance shown.
    north = Location.objects.sites().get(name="North")
    page.get_by_label("Name or NPI").fill("")
    page.get_by_label("Whose").select_option("referring")
    page.get_by_label("Near").select_option(label=str(north))
    page.get_by_label("Within (miles)").fill("5")
    page.get_by_role("button", name="Search").click()
    expect(results.locator("th", has_text="Miles")).to_be_visible()
    miles = [float(m) for m in results.locator("tbody tr td:last-child").all_inner_texts()]
    assert miles and miles == sorted(miles) and max(miles) <= 5

    # Open that provider's practice.
    first_row = results.locator("tbody tr").first
    practice_name = first_row.locator("td").nth(2).get_by_role("link").first.inner_text()
    first_row.locator("td").nth(2).get_by_role("link").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(practice_name)
    expect(page.get_by_role("heading", name="Office staff")).to_be_visible()

    # Add a contact; a wrong phone number first gets a clear message on the field.
    page.get_by_role("button", name="Add office staff").click()
    page.get_by_label("First name").fill("Renata")
    page.get_by_label("Last name").fill("Testcase")
    page.get_by_label("Role").select_option("referral_coordinator")
    page.get_by_label("Influence on referrals").select_option("decides")
    page.get_by_label("Phone").fill("555-01")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".field-error[data-field=phone]")).to_contain_text("10-digit US phone number")
    page.get_by_label("Phone").fill("614-555-0177")
    page.get_by_label("Email", exact=True).fill("renata@example.org")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#contacts")).to_contain_text("Renata Testcase")
    expect(page.locator("#contacts")).to_contain_text("(614) 555-0177")
    assert Contact.objects.get(last_name="Testcase").practice.name == practice_name

    if os.environ.get("LIAISON_SCREENSHOT"):
        page.get_by_role("link", name="Providers").first.click()
        page.get_by_label("Whose").select_option("referring")
        page.get_by_label("Within (miles)").fill("10")
        page.get_by_role("button", name="Search").click()
        expect(results.locator("th", has_text="Miles")).to_be_visible()
        path = Path(os.environ["LIAISON_SCREENSHOT"])
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path), full_page=False)


def test_the_demo_fits_a_phone_and_keeps_admin_pages_from_a_liaison(browser, live_server, demo):
    """Both checks on one copy of the demo (tests/e2e/conftest.py loads it once per session)."""
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    phone = context.new_page()
    sign_in(phone, "liaison@liaison.example", DEMO_PASSWORD)
    practice = Location.objects.referring().first().practice
    from liaison.outreach.models import Account

    account = Account.objects.filter(activities__kind="lunch").first()
    for url in [
        "/directory/providers/?radius_miles=10",
        f"/directory/practices/{practice.pk}/",
        "/directory/contacts/",
        "/outreach/",
        "/outreach/accounts/",
        f"/outreach/accounts/{account.pk}/",
        f"/outreach/activities/new/?account={account.pk}",
        "/outreach/route/",
        "/outreach/ledger/",
        "/feedback/issues/",
    ]:
        phone.goto(url)
        overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, (url, overflow)
    expect(phone.get_by_role("link", name="Audit")).to_have_count(0)
    expect(phone.get_by_role("link", name="Referrals")).to_have_count(0)
    phone.goto("/audit/")
    expect(phone.get_by_role("heading", level=1)).to_have_text("Not allowed")
    context.close()
