"""Market data pages and API, per role: Opportunities (filters, flag, query counts), directory
changes, prospects, the provider page section, and the admin's background import."""

import re

import pytest
from django.urls import reverse

from liaison.audit.models import AuditEvent
from liaison.core.models import JobRun
from liaison.directory import services as directory
from liaison.directory.models import Provider
from liaison.marketdata.models import ImportRun, MedicareProfile, ProcedureVolume, Prospect
from liaison.marketdata.scoring import rescore
from tests.conftest import ROLES
from tests.marketdata_files import build_market, columbus, npi, write_nppes

READERS = ["admin", "manager", "liaison", "analyst"]
NOT_READERS = ["coordinator", "physician"]
FLAGGERS = ["admin", "manager", "liaison"]


@pytest.fixture
def market(site, our_physician, referring_provider, far_provider, tmp_path):
    return build_market(site, our_physician, referring_provider, far_provider, tmp_path)


# --- Opportunities --------------------------------------------------------------------------


@pytest.mark.parametrize("role", READERS)
def test_market_readers_see_the_ranked_opportunities_with_the_reason_and_the_caveats(
    client_for, role, market
):
    response = client_for(role).get(reverse("marketdata:opportunities"))
    assert response.status_code == 200
    html = response.content.decode()
    assert (
        "shares 143 patients/yr with 3 other orthopaedic surgeons, 0 with us, 2.6 miles from our Downtown site"
        in html
    )
    assert html.index("Frank Family") < html.index("Lola Loyal")
    assert "Medicare fee-for-service only" in html and "fewer than 11" in html and "not referrals" in html
    assert ">Opportunities</a>" in html  # in the navigation
    assert ("Add to outreach pipeline" in html) == (role in FLAGGERS)


@pytest.mark.parametrize("role", NOT_READERS)
def test_other_roles_may_not_see_market_data(client_for, role, market, referring_provider):
    c = client_for(role)
    assert c.get(reverse("marketdata:opportunities")).status_code == 403
    assert c.get(reverse("marketdata:changes")).status_code == 403
    assert c.get(reverse("marketdata:prospects")).status_code == 403
    assert c.post(reverse("marketdata:flag", args=[referring_provider.pk])).status_code == 403
    page = c.get(reverse("directory:provider", args=[referring_provider.pk])).content.decode()
    assert "Market data" not in page and ">Opportunities</a>" not in page


def test_anonymous_visitors_are_sent_to_sign_in(client, market):
    response = client.get(reverse("marketdata:opportunities"))
    assert response.status_code == 302 and reverse("accounts:login") in response["Location"]


def test_filters_by_specialty_distance_and_minimum_shared_patients(client_for, market):
    c = client_for("liaison")
    url = reverse("marketdata:opportunities")

    def names(params):
        html = c.get(url, params).content.decode()
        return [n for n in ("Frank Family", "Lola Loyal") if n in html]

    assert names({"specialty": "family"}) == ["Frank Family"]
    assert names({"specialty": "207R00000X"}) == ["Lola Loyal"]
    assert names({"min_shared": "100"}) == ["Frank Family"]
    assert names({"min_shared": "30"}) == ["Frank Family", "Lola Loyal"]
    assert names({"max_miles": "1"}) == []
    assert names({"q": "loyal"}) == ["Lola Loyal"]
    bad = c.get(url, {"max_miles": "far", "min_shared": "-3"})
    assert bad.status_code == 200 and b"Check the filters" in bad.content


def test_htmx_filtering_returns_the_results_and_the_map_data(client_for, market):
    response = client_for("liaison").get(
        reverse("marketdata:opportunities"), {"specialty": "family"}, headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert "<html" not in html and "Frank Family" in html and 'id="market-map-data"' in html
    assert '"sites": [{"name": "Downtown"' in html


def test_the_map_works_offline_unless_tiles_are_configured(client_for, market, settings):
    c = client_for("liaison")
    html = c.get(reverse("marketdata:opportunities")).content.decode()
    assert 'data-tiles=""' in html and "no map tiles configured" in html
    assert "vendor/leaflet/leaflet.js" in html and "unpkg" not in html
    settings.MAP_TILE_URL = "https://tiles.example.org/{z}/{x}/{y}.png"
    html = c.get(reverse("marketdata:opportunities")).content.decode()
    assert 'data-tiles="https://tiles.example.org/{z}/{x}/{y}.png"' in html


def test_the_opportunity_list_query_count_is_fixed(
    client_for, market, referring_location, django_assert_num_queries
):
    c = client_for("liaison")
    url = reverse("marketdata:opportunities")
    c.get(url)  # warm the session
    with django_assert_num_queries(7):
        c.get(url)
    for i in range(12):
        directory.create_provider(
            actor="test",
            first_name="More",
            last_name=f"Provider{i:02d}",
            npi=npi(300 + i),
            primary_taxonomy_code="207Q00000X",
            locations=[referring_location],
        )
    rescore()
    Prospect.objects.create(practice=referring_location.practice, provider=Provider.objects.get(npi=npi(301)))
    with django_assert_num_queries(7):
        response = c.get(url)
    assert len(set(re.findall(r"More Provider\d\d", response.content.decode()))) == 12


# --- flagging -------------------------------------------------------------------------------


@pytest.mark.parametrize("role", FLAGGERS)
def test_flagging_adds_the_provider_and_its_practice_to_the_pipeline_once(
    client_for, role, market, referring_provider
):
    c = client_for(role)
    url = reverse("marketdata:flag", args=[referring_provider.pk])
    response = c.post(url, headers={"HX-Request": "true"})
    assert response.status_code == 200 and b"in the pipeline" in response.content
    prospect = Prospect.objects.get()
    assert prospect.provider == referring_provider and prospect.practice.name == "Maple Family Medicine"
    assert prospect.flagged_by == c.user and prospect.score > 0 and "143 patients" in prospect.explanation
    assert AuditEvent.objects.filter(action="flag_prospect", object_type="marketdata.prospect").count() == 1
    c.post(url)
    assert Prospect.objects.count() == 1 and AuditEvent.objects.filter(action="flag_prospect").count() == 1
    html = c.get(reverse("marketdata:opportunities"), {"q": "Frank"}).content.decode()
    assert "in the pipeline" in html and "Add to outreach pipeline" not in html
    assert b"Frank Family" in c.get(reverse("marketdata:prospects")).content
    from liaison.outreach.models import Account

    account = Account.objects.get(practice=prospect.practice)
    assert (account.stage, account.source) == ("target", "market_data")
    assert "143 patients" in account.potential


def test_a_practice_already_in_the_pipeline_shows_its_stage_instead_of_the_flag(
    client_for, market, referring_provider
):
    from liaison.outreach import services as outreach

    elm = directory.create_practice(actor="test", name="Elm Internal Medicine")
    office = directory.create_location(
        elm, actor="test", address_line1="5 Elm St", city="Columbus", state="OH", zip_code="43215"
    )
    directory.create_provider(
        actor="test",
        first_name="Ella",
        last_name="Elm",
        npi=npi(960),
        primary_taxonomy_code="207R00000X",
        locations=[office],
    )
    rescore()
    maple = referring_provider.locations.get().practice
    account = outreach.add_to_pipeline(maple, actor="test")
    outreach.change_stage(account, "referring", actor="test")
    c = client_for("liaison")
    url = reverse("marketdata:opportunities")
    html = c.get(url).content.decode()
    ella_pk = Provider.objects.get(npi=npi(960)).pk

    def row(html, provider_pk):
        start = html.index(f'<tr data-provider="{provider_pk}">')
        return html[start : html.index("</tr>", start)]

    frank, ella = row(html, referring_provider.pk), row(html, ella_pk)
    assert "in the pipeline: Referring" in frank and reverse("outreach:account", args=[account.pk]) in frank
    assert "Add to outreach pipeline" not in frank and "Add to outreach pipeline" in ella
    # "Not yet in the pipeline": neither flagged nor at a practice with an account.
    html = c.get(url, {"unflagged": "on"}).content.decode()
    assert "Ella Elm" in html and "Frank Family" not in html and "Lola Loyal" not in html
    page = c.get(reverse("directory:provider", args=[referring_provider.pk])).content.decode()
    assert "in the pipeline: Referring" in page and "Add to outreach pipeline" not in page
    rows = {
        o["provider_name"]: o["pipeline_stage"]
        for o in client_for("analyst").get("/api/v1/market/opportunities").json()["items"]
    }
    assert rows["Frank Family, MD"] == "referring" and rows["Ella Elm"] is None
    # Flagging from the page says where the practice stands.
    response = c.post(
        reverse("marketdata:flag", args=[Provider.objects.get(npi=npi(960)).pk]),
        headers={"HX-Request": "true"},
    )
    assert b"in the pipeline: Target" in response.content


def test_analysts_read_but_may_not_flag(client_for, market, referring_provider):
    c = client_for("analyst")
    assert c.post(reverse("marketdata:flag", args=[referring_provider.pk])).status_code == 403
    assert not Prospect.objects.exists()


def test_our_own_physician_cannot_be_flagged(client_for, market, our_physician):
    c = client_for("liaison")
    response = c.post(reverse("marketdata:flag", args=[our_physician.pk]), headers={"HX-Request": "true"})
    assert response.status_code == 400 and b"one of our physicians" in response.content
    assert not Prospect.objects.exists()


def test_flag_without_javascript_redirects_back(client_for, market, referring_provider):
    c = client_for("liaison")
    response = c.post(
        reverse("marketdata:flag", args=[referring_provider.pk]),
        {"next": "/marketdata/opportunities/?q=Frank"},
    )
    assert response.status_code == 302 and response["Location"] == "/marketdata/opportunities/?q=Frank"
    evil = c.post(reverse("marketdata:flag", args=[referring_provider.pk]), {"next": "//evil.example"})
    assert evil["Location"] == reverse("marketdata:opportunities")


# --- the provider page ----------------------------------------------------------------------


def test_the_provider_page_shows_volumes_top_procedures_and_dual_share(
    client_for, market, referring_provider
):
    MedicareProfile.objects.create(
        npi=referring_provider.npi,
        year=2022,
        beneficiaries=640,
        services=3120,
        dual_eligible=160,
        not_dual_eligible=480,
        average_age=72,
    )
    ProcedureVolume.objects.create(
        npi=referring_provider.npi,
        year=2022,
        hcpcs_code="99214",
        hcpcs_description="Office visit, established, 30-39 minutes",
        place_of_service="O",
        beneficiaries=310,
        services=845,
    )
    ProcedureVolume.objects.create(
        npi=referring_provider.npi,
        year=2022,
        hcpcs_code="20610",
        hcpcs_description="Injection of a large joint",
        place_of_service="O",
        beneficiaries=45,
        services=61,
    )
    rescore()
    html = (
        client_for("liaison")
        .get(reverse("directory:provider", args=[referring_provider.pk]))
        .content.decode()
    )
    assert "Market data" in html and "Opportunity score" in html
    assert "640 in 2022" in html and "25% also on Medicaid" in html
    assert html.index("99214") < html.index("20610") and "Office visit, established" in html
    assert "0 with our physicians" in html and "Add to outreach pipeline" in html


def test_a_provider_without_market_data_says_so(client_for, site):
    provider = directory.create_provider(actor="test", first_name="No", last_name="Data")
    html = client_for("manager").get(reverse("directory:provider", args=[provider.pk])).content.decode()
    assert "No public market data for this provider yet." in html


# --- directory changes ----------------------------------------------------------------------


def test_the_directory_changes_page_lists_new_moved_and_deactivated(client_for, tmp_path, site):
    from liaison.marketdata.nppes import NppesImport
    from tests.marketdata_files import NppesEntry

    NppesImport(write_nppes(tmp_path / "a.csv", [columbus(1), columbus(2)]), actor="test").execute()
    newer = [
        columbus(1, address_line1="9 Polaris Pkwy", city="Westerville", zip_code="43081"),
        NppesEntry(npi=npi(2), entity_type="", deactivated_on=columbus(2).updated_on),
        columbus(3),
    ]
    NppesImport(write_nppes(tmp_path / "b.csv", newer), actor="test").execute()
    c = client_for("liaison")
    html = c.get(reverse("marketdata:changes")).content.decode()
    assert "From b.csv" in html
    assert "Pat Local3, MD" in html and "101 High St, Columbus, OH 43215-1234 → 9 Polaris Pkwy" in html
    assert 'id="changes-deactivated"' in html and "Pat Local2, MD" in html
    first = ImportRun.objects.get(file_name="a.csv")
    older = c.get(reverse("marketdata:changes"), {"run": first.pk}).content.decode()
    assert "From a.csv" in older and "Pat Local2, MD" in older


def test_the_changes_command_prints_the_report(db, tmp_path, site, capsys):
    from django.core.management import call_command

    call_command("import", "nppes", str(write_nppes(tmp_path / "a.csv", [columbus(1)])))
    capsys.readouterr()
    call_command("marketdata", "changes")
    out = capsys.readouterr().out
    assert (
        "New providers in our area: 1" in out
        and "Pat Local1, MD (NPI" in out
        and "0.0 mi from Downtown" in out
    )
    call_command("marketdata", "score")
    assert "1 opportunities scored" in capsys.readouterr().out
    call_command("marketdata", "imports")
    assert "a.csv" in capsys.readouterr().out


# --- imports from the page ------------------------------------------------------------------


@pytest.mark.parametrize("role", [r for r in ROLES if r != "admin"])
def test_only_admins_import_market_data(client_for, role):
    c = client_for(role)
    assert c.get(reverse("marketdata:imports")).status_code == 403
    assert c.get(reverse("marketdata:import_new")).status_code == 403
    assert (
        c.post(reverse("marketdata:import_new"), {"kind": "nppes", "file_name": "x.csv"}).status_code == 403
    )


def test_an_admin_starts_an_import_that_runs_as_a_job_with_a_summary(
    client_for, settings, tmp_path, site, django_capture_on_commit_callbacks
):
    settings.MARKETDATA_IMPORT_DIR = tmp_path / "imports"
    (tmp_path / "imports").mkdir()
    write_nppes(
        tmp_path / "imports" / "npidata_pfile_weekly.csv", [columbus(1), columbus(2, npi="1234567890")]
    )
    c = client_for("admin")
    form = c.get(reverse("marketdata:import_new")).content.decode()
    assert "npidata_pfile_weekly.csv" in form
    with django_capture_on_commit_callbacks(execute=True):
        response = c.post(
            reverse("marketdata:import_new"),
            {"kind": "nppes", "file_name": "npidata_pfile_weekly.csv", "radius_miles": "10"},
        )
    job = JobRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("core:job", args=[job.pk])
    assert job.status == "succeeded" and job.result["inserted"] == 1 and job.result["rejected"] == 1
    assert "fails the check digit" in job.result["rejected row 3"]
    page = c.get(reverse("core:job", args=[job.pk])).content.decode()
    assert "Succeeded" in page and "fails the check digit" in page
    run = ImportRun.objects.get()
    assert run.job_run == job and run.filters["radius_miles"] == 10 and run.started_by == c.user
    detail = c.get(reverse("marketdata:import", args=[run.pk])).content.decode()
    assert "1 rejected" in detail and "NPI 1234567890 fails the check digit" in detail
    assert "npidata_pfile_weekly.csv" in c.get(reverse("marketdata:imports")).content.decode()


def test_an_uploaded_file_of_the_wrong_kind_fails_the_job_with_a_clear_message(
    client_for, settings, tmp_path, site, django_capture_on_commit_callbacks
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.MARKETDATA_IMPORT_DIR = tmp_path / "imports"
    c = client_for("admin")
    upload = SimpleUploadedFile("../../notes.csv", b"Code,Grouping,Classification\n207Q00000X,P,Family\n")
    with django_capture_on_commit_callbacks(execute=True):
        c.post(reverse("marketdata:import_new"), {"kind": "utilization", "upload": upload, "year": "2022"})
    assert (tmp_path / "imports" / "notes.csv").exists()  # the name cannot leave the folder
    job = JobRun.objects.get()
    assert job.status == "failed" and "notes.csv: not a Medicare utilisation file" in job.message


def test_the_import_form_explains_what_is_missing(client_for, settings, tmp_path):
    settings.MARKETDATA_IMPORT_DIR = tmp_path / "imports"
    c = client_for("admin")
    response = c.post(reverse("marketdata:import_new"), {"kind": "nppes", "states": "OH,ZZ"})
    html = response.content.decode()
    assert response.status_code == 200 and "Choose a file from the folder or upload one." in html
    assert "Unknown state code(s): ZZ." in html and not JobRun.objects.exists()


def test_an_nppes_import_from_the_page_keeps_our_area_unless_told_to_take_everything(
    client_for, settings, tmp_path, site, django_capture_on_commit_callbacks
):
    settings.MARKETDATA_IMPORT_DIR = tmp_path / "imports"
    (tmp_path / "imports").mkdir()
    write_nppes(tmp_path / "imports" / "npidata.csv", [columbus(1)])
    c = client_for("admin")
    form = c.get(reverse("marketdata:import_new")).content.decode()
    assert re.search(r'name="radius_miles" value="30(\.0)?"', form)  # the market radius, to start with
    response = c.post(reverse("marketdata:import_new"), {"kind": "nppes", "file_name": "npidata.csv"})
    assert "or tick &quot;no filter&quot;" in response.content.decode() and not JobRun.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        c.post(
            reverse("marketdata:import_new"),
            {"kind": "nppes", "file_name": "npidata.csv", "everything": "on"},
        )
    assert JobRun.objects.get().status == "succeeded" and not ImportRun.objects.get().filters.get(
        "radius_miles"
    )


# --- API ------------------------------------------------------------------------------------


def test_the_api_lists_opportunities_for_market_readers(client_for, market):
    response = client_for("analyst").get("/api/v1/market/opportunities", {"specialty": "family"})
    assert response.status_code == 200
    item = response.json()["items"][0]
    assert item["provider_name"] == "Frank Family, MD" and item["shared_with_competitors"] == 143
    assert item["explanation"].startswith("shares 143 patients/yr") and item["points"]["leakage"] == 40.0
    assert client_for("coordinator").get("/api/v1/market/opportunities").status_code == 403


def test_the_api_flags_a_prospect(client_for, market, referring_provider):
    c = client_for("liaison")
    first = c.post(
        "/api/v1/market/prospects", {"provider_id": referring_provider.pk}, content_type="application/json"
    )
    assert (
        first.status_code == 201
        and first.json()["practice_id"] == referring_provider.locations.get().practice_id
    )
    again = c.post(
        "/api/v1/market/prospects", {"provider_id": referring_provider.pk}, content_type="application/json"
    )
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    missing = c.post("/api/v1/market/prospects", {"provider_id": 999999}, content_type="application/json")
    assert missing.status_code == 400 and "provider_id" in missing.json()["errors"]
    analyst = client_for("analyst", email="a2@example.org")
    denied = analyst.post(
        "/api/v1/market/prospects", {"provider_id": referring_provider.pk}, content_type="application/json"
    )
    assert denied.status_code == 403
    assert analyst.get("/api/v1/market/prospects").json()["count"] == 1
