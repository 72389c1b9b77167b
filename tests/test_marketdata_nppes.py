"""`liaison import nppes`: real V1/V2 samples, filters, hand edits, moves, deactivations, bad
files and rows, resuming a killed import."""

import io
from datetime import date

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from openpyxl import Workbook

from liaison.audit.models import AuditEvent
from liaison.core.rows import Blueprint
from liaison.directory import services as directory
from liaison.directory.models import Location, Practice, Provider
from liaison.marketdata import runs
from liaison.marketdata.directory_sync import DirectorySync
from liaison.marketdata.models import DirectoryChange, ImportRun, NppesRecord
from liaison.marketdata.nppes import NppesImport
from liaison.marketdata.nppes_rows import parse_date
from liaison.marketdata.scan import ImportFileError, PolarsScan, ScanFallback, read_ahead
from tests.conftest import make_npi
from tests.external import sample
from tests.marketdata_files import NppesEntry, columbus, far_away, npi, write_nppes, zip_it


def import_nppes(path, *args):
    out = io.StringIO()
    call_command("import", "nppes", str(path), *args, stdout=out)
    return out.getvalue()


def snapshot():
    """What an import leaves in the database, without ids and times."""
    providers = sorted(
        (
            p.npi,
            p.first_name,
            p.last_name,
            p.credential,
            p.status,
            str(p.deactivated_on),
            p.primary_taxonomy_id,
            tuple(sorted((loc.practice.name, loc.address_line1, loc.zip_code) for loc in p.locations.all())),
        )
        for p in Provider.objects.prefetch_related("locations__practice")
    )
    practices = sorted(
        (
            p.name,
            p.organization_npi,
            p.is_active,
            tuple(sorted(loc.address_line1 for loc in p.locations.all())),
        )
        for p in Practice.objects.prefetch_related("locations")
    )
    records = sorted(
        (r.npi, r.row_hash, r.address_key, tuple(r.hand_edited), str(r.deactivated_on))
        for r in NppesRecord.objects.all()
    )
    changes = sorted(
        (c.kind, c.npi, c.name, c.old_address, c.new_address, c.distance_miles)
        for c in DirectoryChange.objects.all()
    )
    return providers, practices, records, changes


# --- the real samples -----------------------------------------------------------------------


def test_both_real_nppes_headers_give_the_same_directory(db, capsys, reader, caplog):
    caplog.set_level("INFO", logger="liaison.marketdata.runs")
    out = import_nppes(sample("nppes/npidata_v2_header_first10.csv"))
    assert "NPPES V2 header (330 columns)" in out
    assert "10 rows read, 10 kept: 10 inserted" in out
    after_v2 = snapshot()
    out = import_nppes(sample("nppes/npidata_v1_first10.csv"))
    assert "NPPES V1 header (329 columns)" in out and "10 unchanged" in out
    assert snapshot() == after_v2
    assert "read on with DuckDB" not in caplog.text  # the real files are read by the fast reader

    wiebe = Provider.objects.get(npi="1679576722")
    assert (wiebe.first_name, wiebe.middle_name, wiebe.last_name, wiebe.credential, wiebe.gender) == (
        "David",
        "A",
        "Wiebe",
        "M.D.",
        "M",
    )
    assert wiebe.primary_taxonomy_id == "207X00000X" and wiebe.source == "nppes"
    office = wiebe.locations.get()
    assert (office.address_line1, office.city, office.state, office.zip_code) == (
        "3500 Central Ave",
        "Kearney",
        "NE",
        "68847-2944",
    )
    assert office.latitude and office.practice.name == "Practice at 3500 Central Ave, Kearney"
    # Two taxonomy slots with the same code, the second marked primary: one specialty.
    assert Provider.objects.get(npi="1588667638").primary_taxonomy_id == "207RC0000X"
    hospital = Practice.objects.get(organization_npi="1497758544")
    assert hospital.name == "Cumberland County Hospital System, Inc"
    assert hospital.locations.get().city == "Fayetteville"
    assert Provider.objects.count() == 8 and Practice.objects.filter(organization_npi__gt="").count() == 2


def test_the_second_run_of_the_same_file_is_a_no_op(db):
    path = sample("nppes/npidata_v2_header_first10.csv")
    import_nppes(path)
    before, events, runs_before = snapshot(), AuditEvent.objects.count(), ImportRun.objects.count()
    out = import_nppes(path)
    assert "already imported" in out and "nothing to do" in out
    assert snapshot() == before and AuditEvent.objects.count() == events
    assert ImportRun.objects.count() == runs_before
    out = import_nppes(path, "--force")
    assert "0 inserted, 0 updated, 10 unchanged" in out
    assert snapshot() == before and AuditEvent.objects.count() == events


def test_one_audit_event_summarises_an_import(db):
    import_nppes(sample("nppes/npidata_v2_header_first10.csv"))
    event = AuditEvent.objects.get(action="import", object_type="marketdata.nppes")
    assert event.changes["inserted"] == 10 and event.changes["rows_read"] == 10
    assert not AuditEvent.objects.filter(object_type="directory.provider").exists()


def test_unknown_taxonomy_codes_are_reported_once(db):
    out = import_nppes(sample("nppes/npidata_v2_header_first10.csv"))
    assert "taxonomy codes are not in your taxonomy list" in out and "231H00000X" in out
    assert Provider.objects.get(npi="1841293990").primary_taxonomy is None


# --- filters --------------------------------------------------------------------------------


def test_the_radius_filter_keeps_rows_near_our_sites_and_every_known_npi(
    db, tmp_path, site, far_provider, reader
):
    path = write_nppes(
        tmp_path / "npidata_pfile.csv",
        [
            columbus(1),
            columbus(2, zip_code="43081", city="Westerville"),  # 13 miles from downtown
            far_away(3),
            far_away(4, npi=far_provider.npi, last_name="Faraway", first_name="Lake", credential="MD"),
        ],
    )
    out = import_nppes(path, "--radius", "5")
    assert "4 rows read, 2 kept" in out
    assert set(Provider.objects.filter(source="nppes").values_list("npi", flat=True)) == {npi(1)}
    far_provider.refresh_from_db()
    assert far_provider.credential == "DO"  # hand-entered before NPPES: kept
    assert NppesRecord.objects.get(npi=far_provider.npi).hand_edited == ["credential"]


def test_states_taxonomy_and_entity_filters(db, tmp_path, reader):
    entries = [
        columbus(1),
        columbus(2, taxonomies=["207X00000X"]),
        far_away(3, taxonomies=["207XS0114X"]),
        columbus(4, entity_type="2", org_name="Buckeye Ortho Group", taxonomies=["207X00000X"]),
    ]
    path = write_nppes(tmp_path / "npidata.csv", entries)
    out = import_nppes(path, "--states", "oh", "--taxonomy", "207X", "--entity", "individual")
    assert "1 kept" in out
    assert list(Provider.objects.values_list("npi", flat=True)) == [npi(2)]
    out = import_nppes(path, "--taxonomy", "orthopaedic surgery")
    assert "4 rows read, 3 kept" in out
    with pytest.raises(CommandError, match="no taxonomy code matches 'astrology'"):
        import_nppes(path, "--taxonomy", "astrology")
    with pytest.raises(CommandError, match="unknown state code"):
        import_nppes(path, "--states", "XX")


def test_near_site_needs_a_radius_and_a_known_site(db, tmp_path, site):
    path = write_nppes(tmp_path / "npidata.csv", [columbus(1)])
    with pytest.raises(CommandError, match="--near-site needs --radius"):
        import_nppes(path, "--near-site", "Downtown")
    with pytest.raises(CommandError, match="not one of our sites"):
        import_nppes(path, "--near-site", "Moon", "--radius", "5")
    assert "1 kept" in import_nppes(path, "--near-site", "downtown", "--radius", "5")


# --- the directory rules --------------------------------------------------------------------


def test_a_hand_edit_survives_a_newer_nppes_file(db, tmp_path):
    import_nppes(write_nppes(tmp_path / "a.csv", [columbus(1, credential="MD", middle_name="Q")]))
    provider = Provider.objects.get(npi=npi(1))
    directory.update_provider(provider, actor="test", credential="MD, FAAFP")
    newer = columbus(1, credential="DO", middle_name="R", last_name="Married", updated_on=date(2025, 2, 1))
    out = import_nppes(write_nppes(tmp_path / "b.csv", [newer]))
    assert "1 updated" in out
    provider.refresh_from_db()
    assert provider.credential == "MD, FAAFP"  # ours
    assert (provider.last_name, provider.middle_name) == ("Married", "R")  # NPPES, untouched by hand
    record = NppesRecord.objects.get(npi=npi(1))
    assert record.hand_edited == ["credential"] and record.values["credential"] == "DO"


def test_a_provider_entered_by_hand_only_gets_its_blank_fields_filled(db, tmp_path, referring_provider):
    entry = columbus(
        1, npi=referring_provider.npi, first_name="Francis", last_name="Family", credential="MD", sex="M"
    )
    import_nppes(write_nppes(tmp_path / "a.csv", [entry]))
    referring_provider.refresh_from_db()
    assert referring_provider.first_name == "Frank" and referring_provider.gender == "M"
    assert referring_provider.source == "manual"
    assert [loc.city for loc in referring_provider.locations.all()] == [
        "Columbus"
    ]  # its own office, not NPPES'


def test_a_move_relinks_the_provider_and_is_reported(db, tmp_path, site):
    import_nppes(write_nppes(tmp_path / "a.csv", [columbus(1), columbus(2)]))
    moved = columbus(1, address_line1="9 Polaris Pkwy", city="Westerville", zip_code="430811111")
    out = import_nppes(write_nppes(tmp_path / "b.csv", [moved]))
    assert "Moved: 1" in out
    provider = Provider.objects.get(npi=npi(1))
    assert [loc.address_line1 for loc in provider.locations.all()] == ["9 Polaris Pkwy"]
    change = DirectoryChange.objects.get(kind="moved")
    assert change.old_address == "101 High St, Columbus, OH 43215-1234"
    assert change.new_address == "9 Polaris Pkwy, Westerville, OH 43081-1111"
    assert 10 < change.distance_miles < 15 and change.nearest_site == site


def test_individuals_at_one_address_share_the_organisations_practice(db, tmp_path):
    same = {"address_line1": "500 Medical Pkwy", "zip_code": "432150001"}
    entries = [
        columbus(1, **same),  # read before the organisation
        columbus(2, entity_type="2", org_name="Downtown Family Physicians Inc", **same),
        columbus(3, address_line1="500 Medical Parkway", zip_code="43215"),  # another spelling
    ]
    import_nppes(write_nppes(tmp_path / "a.csv", entries), "--batch-size", "1")
    org = Practice.objects.get(organization_npi=npi(2))
    assert org.name == "Downtown Family Physicians Inc"
    office = org.locations.get()
    assert set(office.providers.values_list("npi", flat=True)) == {npi(1), npi(3)}
    assert not Practice.objects.filter(name__startswith="Practice at 500").exists()


def test_a_refresh_that_changes_nothing_does_not_look_for_offices_to_regroup(db, tmp_path, monkeypatch):
    from liaison.marketdata import directory_sync

    calls = []
    real = directory_sync.regroup_generated_practices
    monkeypatch.setattr(directory_sync, "regroup_generated_practices", lambda: calls.append(1) or real())
    path = write_nppes(tmp_path / "a.csv", [columbus(1), columbus(2)])
    import_nppes(path)
    assert "0 inserted, 0 updated, 2 unchanged" in import_nppes(path, "--force")
    assert len(calls) == 1


def test_a_deactivated_npi_in_the_full_file_flags_the_provider_and_keeps_its_history(db, tmp_path):
    import_nppes(write_nppes(tmp_path / "a.csv", [columbus(1), columbus(2)]))
    gone = NppesEntry(npi=npi(1), entity_type="", deactivated_on=date(2025, 3, 1))
    out = import_nppes(write_nppes(tmp_path / "b.csv", [gone, columbus(2)]))
    assert "NPI deactivated: 1" in out
    provider = Provider.objects.get(npi=npi(1))
    assert provider.status == "deactivated" and provider.deactivated_on == date(2025, 3, 1)
    assert provider.locations.exists() and provider.last_name == "Local1"  # history kept
    record = NppesRecord.objects.get(npi=npi(1))
    assert record.is_deactivated and record.values["last_name"] == "Local1"
    back = columbus(1, reactivated_on=date(2025, 5, 1), deactivated_on=date(2025, 3, 1))
    out = import_nppes(write_nppes(tmp_path / "c.csv", [back]))
    assert "NPI reactivated: 1" in out
    provider.refresh_from_db()
    assert provider.status == "active" and provider.deactivated_on is None


@pytest.mark.parametrize("form", ["xlsx", "csv"])
def test_the_deactivation_report_deactivates_known_npis(db, tmp_path, form, referring_provider):
    rows = [
        ("NPI", "NPPES Deactivation Date"),
        (referring_provider.npi, "03/01/2025"),
        (npi(77), "03/02/2025"),
    ]
    if form == "xlsx":
        book = Workbook()
        sheet = book.active
        sheet.append(["NPPES Deactivated NPI Report 20250310"])
        for row in rows:
            sheet.append(list(row))
        path = tmp_path / "NPPES_Deactivated_NPI_Report_20250310.xlsx"
        book.save(path)
    else:
        path = tmp_path / "deactivated.csv"
        path.write_text("\n".join(",".join(r) for r in rows) + "\n")
    out = import_nppes(path)
    assert "deactivated NPI report" in out and "1 kept" in out and "NPI deactivated: 1" in out
    referring_provider.refresh_from_db()
    assert referring_provider.status == "deactivated" and referring_provider.deactivated_on == date(
        2025, 3, 1
    )
    assert "already imported" in import_nppes(path)


# --- files as downloaded, and bad files -----------------------------------------------------


def test_the_weekly_zip_is_read_from_its_data_member(db, tmp_path):
    csv_path = write_nppes(tmp_path / "npidata_pfile_20250602-20250608.csv", [columbus(1), columbus(2)])
    zipped = zip_it(
        csv_path,
        tmp_path / "NPPES_Data_Dissemination_060225_060825_Weekly.zip",
        extra={
            "npidata_pfile_20250602-20250608_fileheader.csv": '"NPI","Entity Type Code"\n',
            "pl_pfile_20250602-20250608.csv": '"NPI","Provider Secondary Practice Location Address"\n',
        },
    )
    out = import_nppes(zipped)
    assert "NPPES_Data_Dissemination_060225_060825_Weekly.zip (npidata_pfile_20250602-20250608.csv)" in out
    assert Provider.objects.count() == 2


def test_a_truncated_zip_is_refused_with_a_clear_message(db, tmp_path):
    csv_path = write_nppes(tmp_path / "npidata_pfile.csv", [columbus(i) for i in range(1, 60)])
    data = zip_it(csv_path, tmp_path / "full.zip").read_bytes()
    truncated = tmp_path / "NPPES_Data_Dissemination_June_2025.zip"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CommandError) as exc:
        import_nppes(truncated)
    assert "NPPES_Data_Dissemination_June_2025.zip: not a readable zip file" in str(exc.value)
    assert "download it again" in str(exc.value)
    assert not Provider.objects.exists() and not ImportRun.objects.exists()


def test_a_zip_with_a_damaged_member_is_refused(db, tmp_path):
    csv_path = write_nppes(tmp_path / "npidata_pfile.csv", [columbus(i) for i in range(1, 200)])
    zipped = zip_it(csv_path, tmp_path / "weekly.zip")
    data = bytearray(zipped.read_bytes())
    data[200:260] = b"\x00" * 60  # inside the compressed member: the central directory still reads
    zipped.write_bytes(bytes(data))
    with pytest.raises(
        CommandError, match=r"weekly.zip \(npidata_pfile.csv\): the zip is damaged or truncated"
    ):
        import_nppes(zipped)
    assert not Provider.objects.exists()


def test_a_file_of_the_wrong_kind_says_which_command_it_belongs_to(db, tmp_path):
    with pytest.raises(CommandError) as exc:
        import_nppes(sample("nucc/nucc_taxonomy_251.csv"))
    assert "nucc_taxonomy_251.csv: not an NPPES data file" in str(exc.value)
    assert "looks like a NUCC taxonomy file: use `liaison import taxonomy FILE`" in str(exc.value)
    pairs = tmp_path / "physician-shared-patient-patterns-2015-days30.txt"
    pairs.write_text(f"{npi(1)},{npi(2)},40,20,3\n")
    with pytest.raises(
        CommandError,
        match="looks like a CMS shared patient patterns file: use `liaison import shared-patients",
    ):
        import_nppes(pairs)
    with pytest.raises(CommandError, match="no such file"):
        import_nppes(tmp_path / "missing.csv")


def test_a_bad_npi_is_rejected_with_its_row_and_the_other_rows_imported(db, tmp_path):
    entries = [columbus(1), columbus(2, npi="1234567890"), columbus(3, npi="12345"), columbus(4)]
    out = import_nppes(write_nppes(tmp_path / "npidata.csv", entries))
    assert "4 rows read, 4 kept: 2 inserted" in out and "2 rejected" in out
    assert "row 3: NPI 1234567890: NPI 1234567890 fails the check digit" in out
    assert "row 4: NPI 12345: NPI '12345' is not 10 digits starting with 1 or 2" in out
    assert set(Provider.objects.values_list("npi", flat=True)) == {npi(1), npi(4)}
    run = ImportRun.objects.get()
    assert [r["row"] for r in run.rejected_rows] == [3, 4]


def test_a_broken_quote_is_rejected_with_its_line_and_the_other_rows_imported(db, tmp_path, reader):
    path = write_nppes(tmp_path / "npidata.csv", [columbus(1), columbus(2), columbus(3)])
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace('"LOCAL2"', '"LOCAL"2"')
    path.write_text("\n".join(lines) + "\n")
    out = import_nppes(path)
    assert "row 3: unreadable row: broken quote" in out and "Provider Last Name (Legal Name)" in out
    assert "3 rows read, 2 kept: 2 inserted" in out and "1 rejected" in out
    assert set(Provider.objects.values_list("npi", flat=True)) == {npi(1), npi(3)}


def test_a_row_without_an_address_or_with_a_bad_zip_is_imported_without_an_office(db, tmp_path):
    entries = [columbus(1, zip_code="99999"), columbus(2, address_line1=""), columbus(3, state="KY")]
    out = import_nppes(write_nppes(tmp_path / "npidata.csv", entries))
    assert "3 inserted" in out and "warnings (3" in out
    assert "99999 is not a known US ZIP code" in out and "no practice address" in out
    assert "ZIP 43215 is in OH, not KY" in out
    assert not Location.objects.exists() and Provider.objects.count() == 3


def test_a_row_with_too_few_columns_is_rejected_with_its_line(db, tmp_path, reader):
    path = write_nppes(tmp_path / "npidata.csv", [columbus(1), columbus(2), columbus(3)])
    lines = path.read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 5)[0]
    path.write_text("\n".join(lines) + "\n")
    out = import_nppes(path)
    assert "row 3: unreadable row: fewer columns than the header" in out
    assert set(Provider.objects.values_list("npi", flat=True)) == {npi(1), npi(3)}


def test_a_bad_row_half_way_hands_over_to_the_careful_reader_without_losing_or_repeating_a_row(
    db, tmp_path, monkeypatch, settings, site, caplog
):
    path = _file_for_resume(tmp_path)
    lines = path.read_text().splitlines()
    lines[35] = lines[35].replace('"LOCAL35"', '"LOCAL"35"')
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(PolarsScan, "chunk_rows", 10)
    with caplog.at_level("INFO", logger="liaison.marketdata.runs"):
        out = import_nppes(path, "--batch-size", "10")
    # The fast reader commits the batches it read before the bad row (when Polars notices the bad
    # row varies a little); the careful one reads on from the last of them, repeating none.
    assert "read on with DuckDB" in caplog.text
    assert "48 rows read, 47 kept: 46 inserted" in out and "2 rejected" in out
    assert "row 36: unreadable row: broken quote" in out and "row 49: NPI 1234567890" in out
    handed_over = snapshot()
    rejected = ImportRun.objects.get().rejected_rows

    _wipe()
    settings.MARKETDATA_FAST_SCAN = False
    import_nppes(path, "--batch-size", "10")
    assert snapshot() == handed_over
    assert ImportRun.objects.get().rejected_rows == rejected


def test_batches_read_ahead_come_in_order_with_the_readers_error_and_stop_their_thread():
    import threading

    def reader(fail_at=None):
        for i in range(10):
            if i == fail_at:
                raise ScanFallback(f"bad row in batch {i}")
            yield [(i,)]

    assert [b[0][0] for b in read_ahead(reader(), depth=2)] == list(range(10))
    got = []
    with pytest.raises(ScanFallback, match="batch 6"):
        for batch in read_ahead(reader(fail_at=6), depth=2):
            got.append(batch[0][0])
    assert got == [0, 1, 2, 3, 4, 5]  # every batch before the error, then the error

    source = reader()
    ahead = read_ahead(source, depth=2)
    next(ahead)
    ahead.close()  # as an import that stops at a bad batch of its own
    assert not any(t.name == "read-ahead" for t in threading.enumerate())
    assert source.gi_frame is None  # the reader was closed too


def test_an_import_freezes_the_heap_only_while_it_runs(db, tmp_path, monkeypatch):
    import gc

    frozen = []
    monkeypatch.setattr(
        runs.FileImport,
        "_execute",
        lambda self, real=runs.FileImport._execute: frozen.append(gc.get_freeze_count()) or real(self),
    )
    with pytest.raises(CommandError):
        import_nppes(tmp_path / "missing.csv")
    assert frozen and frozen[0] > 100_000  # Django and the modules, set aside during the import
    assert gc.get_freeze_count() == 0  # and given back, even after a failure


def test_nppes_dates_read_in_every_spelling_and_impossible_ones_are_none():
    assert (
        parse_date("05/01/2010") == parse_date("5/1/2010") == parse_date(" 2010-05-01 ") == date(2010, 5, 1)
    )
    assert parse_date("05/01/10") == date(2010, 5, 1)
    assert [parse_date(v) for v in ("02/30/2020", "13/01/2010", "", "soon", "05/01/20100")] == [None] * 5


def test_directory_objects_made_without_the_model_constructor_are_the_same(db, site):
    kwargs = {"practice": site.practice, "name": "North", "address_line1": "1 High St", "zip_code": "43215"}
    made, built = Blueprint(Location).make(**kwargs), Location(**kwargs)
    fields = [f.attname for f in Location._meta.concrete_fields]
    assert [getattr(made, f) for f in fields] == [getattr(built, f) for f in fields]
    assert made.practice is site.practice and made._state.adding
    with pytest.raises(TypeError, match="Location has no field nmae"):
        Blueprint(Location).make(nmae="North")
    with pytest.raises(ValueError, match="practice must be a Practice"):
        Blueprint(Location).make(practice=site)
    made.practice = site.practice  # the descriptor still works on it
    assert made.practice_id == site.practice.pk


def test_remembered_field_checks_accept_and_refuse_as_the_model_does(db):
    blueprint = Blueprint(Provider)

    def check(**values):
        values = {"first_name": "Ann", "last_name": "Lee", "npi": "1234567893", **values}
        made, built = blueprint.make(**values), Provider(**values)
        try:
            built.clean_fields(exclude=["primary_taxonomy"])
        except ValidationError as exc:
            with pytest.raises(ValidationError) as ours:
                blueprint.clean_fields(made, frozenset({"primary_taxonomy"}))
            assert ours.value.message_dict == exc.message_dict
            return exc.message_dict
        blueprint.clean_fields(made, frozenset({"primary_taxonomy"}))
        return None

    for _ in range(2):  # the second time from what it remembers
        assert check() is None
        assert check(gender="F") is None
        assert "gender" in check(gender="Q")
        assert "npi" in check(npi="1234567890")  # bad check digit
        assert set(check(last_name="", npi="12")) == {"last_name", "npi"}
        assert "first_name" in check(first_name="x" * 81)
    assert (str, "F") in blueprint.accepted["gender"] and (str, "Q") not in blueprint.accepted["gender"]


# --- killed half way ------------------------------------------------------------------------


class Killed(Exception):
    pass


def _file_for_resume(tmp_path):
    entries = [columbus(i, address_line1=f"{i % 7} High St") for i in range(1, 41)]
    entries += [
        columbus(100 + i, entity_type="2", org_name=f"Group {i}", address_line1=f"{i} High St")
        for i in range(7)
    ]
    entries.append(columbus(50, npi="1234567890"))  # rejected
    return write_nppes(tmp_path / "npidata_pfile.csv", entries)


def _wipe():
    DirectoryChange.objects.all().delete()
    NppesRecord.objects.all().delete()
    ImportRun.objects.all().delete()
    Provider.objects.filter(is_ours=False).delete()
    Practice.objects.filter(is_ours=False).delete()


def test_an_import_killed_between_batches_resumes_to_the_same_database(db, tmp_path, monkeypatch, site):
    path = _file_for_resume(tmp_path)

    def kill_after_two(run, batch_no):
        if batch_no == 2:
            raise Killed

    monkeypatch.setattr(runs, "batch_committed", kill_after_two)
    with pytest.raises(Killed):
        NppesImport(path, actor="test", batch_size=10).execute()
    run = ImportRun.objects.get()
    assert (
        run.status == "failed"
        and run.checkpoint == 20
        and "run the same import again to resume" in run.message
    )
    assert Provider.objects.count() == 20
    monkeypatch.setattr(runs, "batch_committed", lambda run, batch_no: None)
    out = import_nppes(path, "--batch-size", "10")
    assert "resumed: attempt 2" in out
    assert "48 rows read, 48 kept: 47 inserted" in out and "1 rejected" in out
    resumed = snapshot()
    rejected = ImportRun.objects.get().rejected_rows

    _wipe()
    import_nppes(path, "--batch-size", "10")
    assert snapshot() == resumed
    assert ImportRun.objects.get().rejected_rows == rejected


def test_an_import_killed_inside_a_batch_leaves_no_half_batch(db, tmp_path, monkeypatch, site):
    path = _file_for_resume(tmp_path)
    calls = {"n": 0}
    real_flush = DirectorySync.flush

    def flush_then_die(self):
        calls["n"] += 1
        real_flush(self)  # the batch's rows are written...
        if calls["n"] == 3:
            raise Killed  # ...and the process dies before the batch commits

    monkeypatch.setattr(DirectorySync, "flush", flush_then_die)
    with pytest.raises(Killed):
        NppesImport(path, actor="test", batch_size=10).execute()
    assert Provider.objects.count() == 20  # two whole batches, nothing of the third
    assert NppesRecord.objects.count() == 20
    monkeypatch.setattr(DirectorySync, "flush", real_flush)
    import_nppes(path, "--batch-size", "10")
    resumed = snapshot()
    _wipe()
    import_nppes(path, "--batch-size", "10")
    assert snapshot() == resumed


def test_an_import_that_is_still_running_is_not_started_twice(db, tmp_path):
    path = write_nppes(tmp_path / "npidata.csv", [columbus(1)])
    first = NppesImport(path, actor="test")
    first.execute()
    ImportRun.objects.update(status="running")
    with pytest.raises(ImportFileError, match="this import is already running"):
        NppesImport(path, actor="test").execute()


# --- scale ----------------------------------------------------------------------------------


def test_a_generated_file_imports_with_a_fixed_number_of_queries_per_batch(db, tmp_path, site):
    entries = [columbus(i, address_line1=f"{i % 40} High St") for i in range(1, 601)]
    path = write_nppes(tmp_path / "npidata.csv", entries)
    with CaptureQueriesContext(connection) as queries:
        NppesImport(path, actor="test", batch_size=200).execute()
    assert Provider.objects.count() == 600 and Location.objects.filter(practice__is_ours=False).count() == 40
    writes = [q for q in queries.captured_queries if q["sql"].startswith(("INSERT", "UPDATE", "DELETE"))]
    assert len(writes) < 80, len(writes)  # bulk writes per batch, not one per row
    assert len(queries.captured_queries) < 200


def test_the_known_npis_filter_is_computed_before_this_run_added_any(db, tmp_path):
    """A resumed run keeps the rows the first try kept, though the first try added NPIs."""
    path = write_nppes(tmp_path / "npidata.csv", [columbus(1), far_away(2)])
    importer = NppesImport(path, actor="test", states=["OH"])
    importer.execute()
    assert importer._known_npis() == []
    assert make_npi(1) not in importer._known_npis()


def test_the_benchmark_generator_makes_a_file_our_importer_reads(db, tmp_path, site, north_site):
    from liaison.marketdata.synthetic import generate_nppes_file

    made = generate_nppes_file(
        tmp_path / "npidata_pfile_generated.csv",
        target_bytes=400_000,
        centre=(39.9612, -82.9988),
        local_share=0.2,
    )
    assert made.rows > 250 and made.local_npis
    out = import_nppes(made.path, "--radius", "25")
    assert f"{made.rows:,} rows read" in out and "0 rejected" in out
    # Every row placed around Columbus is in (a few others landed there by chance).
    assert set(made.local_npis) <= set(NppesRecord.objects.values_list("npi", flat=True))
