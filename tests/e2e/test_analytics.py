"""A manager finds a referrer cooling off in the demo data, reads why, drills down to the referrals
and exports them; a liaison sees the same counts without any patient field."""

import csv
import re

import pytest
from playwright.sync_api import expect

from liaison.accounts.demo import DEMO_PASSWORD, DEMO_USERS
from liaison.analytics.models import CoolingAlert
from liaison.referrals.models import Referral

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def sign_in(page, role: str) -> None:
    email = next(email for email, _, r in DEMO_USERS if r == role)
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("link", name="Analytics")).to_be_visible()


def volume_figures(page) -> list[str]:
    return page.locator("#table-volume tbody").inner_text().split()


def test_the_detector_finds_the_referrers_the_demo_made_cool_off(demo):
    # The referrals demo gives some referrers a steep recent drop; the analytics step runs the real
    # detector over the same history, so the dashboards show (nearly) all of them.
    made = int(re.search(r"(\d+) referrers cooling off, ", demo).group(1))
    found = int(
        re.search(r"analytics refreshed over \d+ referrals: (\d+) referrers cooling off", demo).group(1)
    )
    assert made >= 5 and made - 2 <= found <= made + 2
    assert CoolingAlert.objects.filter(cleared_on__isnull=True).count() == found


def test_manager_drills_from_an_at_risk_referrer_to_its_referrals_and_a_liaison_sees_no_patient(
    browser, live_server, demo, tmp_path
):
    alert = CoolingAlert.objects.filter(cleared_on__isnull=True).order_by("p_value").first()
    assert alert is not None, "the demo history has referrers cooling off"
    patients = {r.patient_name for r in Referral.objects.filter(referring_provider=alert.provider)}

    manager = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    page = manager.new_page()
    sign_in(page, "manager")
    page.get_by_role("link", name="Analytics").click()
    alerts = page.locator("#table-cooling_alerts")
    row = alerts.locator("tr", has_text=alert.explanation[:40])
    expect(row).to_contain_text("averaged")
    expect(row).to_contain_text("referrals/month")
    manager_volume = volume_figures(page)

    # The referrer's page: its months, then the referrals behind the busiest one.
    row.get_by_role("link").first.click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    months = page.locator("#table-referrer_monthly tbody a")
    busiest = max(range(months.count()), key=lambda i: int(months.nth(i).inner_text()))
    count = months.nth(busiest).inner_text()
    months.nth(busiest).click()
    expect(page.get_by_text(re.compile(rf"^{count} referrals?"))).to_be_visible()
    links = page.locator("#table-referrals tbody a")
    assert links.count() == min(int(count), 50) and links.first.inner_text().startswith("#")
    with page.expect_download() as download:
        page.locator("#table-referrals").get_by_role("link", name="CSV").click()
    path = tmp_path / "export.csv"
    download.value.save_as(path)
    rows = list(csv.reader(path.open()))
    assert rows[0][0] == "Month received" and len(rows) == int(count) + 1
    text = path.read_text()
    assert not any(name and name in text for name in patients)
    manager.close()

    # A liaison: the same volume figures, the drill-down without referral numbers or patients.
    liaison = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    page = liaison.new_page()
    sign_in(page, "liaison")
    page.get_by_role("link", name="Analytics").click()
    assert volume_figures(page) == manager_volume
    page.locator("#table-volume tbody tr:last-child td:nth-child(2) a").click()
    expect(page.locator("#table-referrals thead th").first).to_have_text("Month received")
    expect(page.locator("#table-referrals thead")).not_to_contain_text("Payer")
    expect(page.locator("#table-referrals thead")).not_to_contain_text("Referral")
    assert page.locator("#table-referrals tbody a").count() == 0
    html = page.content()
    assert not any(name and name in html for name in patients)
    liaison.close()
