"""A liaison finds the best referral opportunities near our sites and adds one to the outreach
pipeline: filter the list, read why it ranks there, see it on the map, flag it."""

import re

import pytest
from playwright.sync_api import expect

from liaison.marketdata.models import Prospect
from tests.conftest import PASSWORD
from tests.marketdata_files import build_market

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def taxonomy(transactional_db):
    """Transactional tests empty every table, the built-in specialties included."""
    from liaison.directory.taxonomy import load_builtin

    load_builtin()


def test_a_liaison_filters_opportunities_reads_why_and_flags_a_prospect(
    taxonomy, page, make_user, site, our_physician, referring_provider, far_provider, tmp_path
):
    build_market(site, our_physician, referring_provider, far_provider, tmp_path)
    user = make_user("liaison")
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    page.get_by_role("link", name="Opportunities").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Opportunities")
    expect(page.get_by_text("Medicare fee-for-service only")).to_be_visible()
    rows = page.locator("#results table.opportunities tbody tr")
    expect(rows).to_have_count(2)
    # The map draws our site and the two opportunities from the vendored Leaflet, with no tiles.
    expect(page.locator("#market-map")).to_have_attribute("data-markers", "3")

    page.get_by_label("Specialty").fill("family")
    page.get_by_label("Specialty").press("Tab")  # the change event filters too: let it finish first
    page.wait_for_load_state("networkidle")
    expect(rows).to_have_count(1)
    expect(page).to_have_url(re.compile(r"specialty=family"))
    row = rows.first
    expect(row.locator(".why")).to_have_text(
        "shares 143 patients/yr with 3 other orthopaedic surgeons, 0 with us, 2.6 miles from our Downtown site"
    )
    expect(page.locator("#market-map")).to_have_attribute("data-markers", "2")

    row.get_by_role("button", name="Add to outreach pipeline").click()
    expect(row.get_by_role("link", name="in the pipeline: Target")).to_be_visible()  # its account
    prospect = Prospect.objects.get()
    assert prospect.provider == referring_provider and prospect.flagged_by == user
    # Its practice is in the pipeline now: "not yet in the pipeline" leaves both its providers out.
    page.get_by_label("Specialty").fill("")
    page.get_by_label("Not yet in the pipeline").check()
    page.get_by_role("button", name="Filter").click()
    page.wait_for_load_state("networkidle")
    expect(page.get_by_text("No opportunity matches these filters.")).to_be_visible()

    page.get_by_role("button", name="Prospects").click()
    expect(page.get_by_role("link", name="Frank Family, MD")).to_be_visible()
