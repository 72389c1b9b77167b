"""A coordinator imports a practice-management export: upload, map the columns (proposed from
the header), preview with the bad row named, import skipping it, and the referrals are in the
queue. A liaison cannot reach the page."""

import re

import pytest
from playwright.sync_api import expect

from liaison.directory import services as directory
from liaison.interop.models import ColumnMapping
from liaison.referrals.models import Referral
from tests.conftest import PASSWORD, make_npi

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

EXPORT = """Referral #,Patient Name,DOB,Phone,MRN,Insurance,Referring NPI,Referring Provider,Date Received,Reason,Dx,Status,Appt Date
R-1,"Quackenbush, Zelda",04/02/1961,614-555-0199,MRN-1,Medicare,{npi},"Family, Frank",11/02/2026,Right knee OA,M17.11,,
R-2,"Okafor, Chidi",12/31/1975,,MRN-2,Aetna,1999999999,"Unknown, Ursula",11/03/2026,Hip pain,M16.12,Scheduled,11/20/2026 09:30
R-3,"Lindqvist, Maja",07/14/1990,614-555-0111,MRN-3,Anthem,,"Stranger, Sam",11/04/2026,Shoulder pain,,,
R-4,"Nobody, Noname",13/45/1961,,,,,,11/02/2026,,,,
"""


@pytest.fixture
def referring_provider(db):
    # No taxonomy code: after an earlier browser test the database is flushed, built-in rows included.
    practice = directory.create_practice(actor="test", name="Maple Family Medicine")
    office = directory.create_location(
        practice, actor="test", address_line1="10 Oak Ave", city="Columbus", state="OH", zip_code="43212"
    )
    return directory.create_provider(
        actor="test", first_name="Frank", last_name="Family", npi=make_npi(2), locations=[office]
    )


def sign_in(page, email: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(re.compile(r"/accounts/login/"))


def test_a_coordinator_uploads_maps_previews_and_imports_an_export(page, make_user, referring_provider):
    make_user("coordinator", email="cora@example.org")
    sign_in(page, "cora@example.org")

    page.goto("/referrals/")
    page.get_by_role("link", name="Import a file").click()
    page.get_by_label("Practice-management export").set_input_files(
        files=[
            {
                "name": "referrals-nov.csv",
                "mimeType": "text/csv",
                "buffer": EXPORT.format(npi=referring_provider.npi).encode(),
            }
        ]
    )
    page.get_by_role("button", name="Upload").click()

    # The columns are proposed from the header; the user names the mapping and saves it.
    expect(page.get_by_role("heading", level=1)).to_have_text("Which column holds what?")
    expect(page.get_by_label("Patient name (one column)")).to_have_value("Patient Name")
    expect(page.get_by_label("Referral id")).to_have_value("Referral #")
    page.get_by_label("Date of birth format").select_option("%m/%d/%Y")
    page.get_by_label("Save this mapping as").fill("Nov export")
    page.get_by_role("button", name="Save the mapping and preview").click()

    # The preview: rows as they will be imported, the bad row named with its reason.
    expect(page.locator("#row-errors")).to_contain_text(
        "Row 5: Date of birth: not a date in the format MM/DD/YYYY."
    )
    expect(page.locator("#preview")).to_contain_text("Quackenbush, Zelda")
    expect(page.locator("#preview")).to_contain_text("to match")  # an unknown referrer, flagged
    expect(page.locator("[data-count=new]")).to_have_text("3")
    page.get_by_role("button", name="Skip the 1 bad row and import the others").click()

    expect(page.locator("[data-status]")).to_have_text("Imported")
    expect(page.locator("[data-result=imported]")).to_have_text("3")
    expect(page.get_by_role("alert")).to_contain_text("Row 5")
    assert Referral.objects.count() == 3
    assert ColumnMapping.objects.get().name == "Nov export"

    page.get_by_role("button", name="Open the referral queue").click()
    expect(page.locator("#results")).to_contain_text("Quackenbush")


def test_a_liaison_cannot_open_the_import_page(page, make_user):
    make_user("liaison", email="lia@example.org")
    sign_in(page, "lia@example.org")
    page.goto("/referrals/import/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")


def test_the_import_pages_fit_a_phone_screen(phone, make_user, referring_provider):
    from liaison.interop import services

    user = make_user("coordinator", email="cora@example.org")
    upload = services.create_upload(
        actor=user, name="x.csv", content=EXPORT.format(npi=referring_provider.npi).encode()
    )
    sign_in(phone, "cora@example.org")
    phone.goto(f"/referrals/import/{upload.pk}/mapping/")
    phone.get_by_label("Save this mapping as").fill("Phone export")
    phone.get_by_role("button", name="Save the mapping and preview").click()
    expect(phone.locator("#preview")).to_be_visible()
    for url in [
        "/referrals/import/",
        f"/referrals/import/{upload.pk}/mapping/",
        f"/referrals/import/{upload.pk}/preview/",
    ]:
        phone.goto(url)
        overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, (url, overflow)
