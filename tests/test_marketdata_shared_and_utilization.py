"""`liaison import shared-patients` and `liaison import utilization`: formats detected from the file,
only the pairs and providers we care about kept, idempotent, resumable, bad rows named."""

import io

import pytest
from django.core.management import CommandError, call_command

from liaison.directory import services as directory
from liaison.marketdata import runs
from liaison.marketdata.models import (
    ImportRun,
    MedicareProfile,
    ProcedureVolume,
    SharedPatientDataset,
    SharedPatientPair,
)
from liaison.marketdata.scan import PolarsScan
from liaison.marketdata.shared_patients import SharedPatientsImport, window_from_name
from liaison.marketdata.utilization import UtilizationImport
from tests.conftest import make_npi
from tests.marketdata_files import npi, write_shared_patients


def run_import(kind, path, *args):
    out = io.StringIO()
    call_command("import", kind, str(path), *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def market(our_physician, referring_provider, far_provider):
    """Ours (Olivia Bone), a referring provider 3 miles away, one in Cleveland (not near)."""
    return {"ours": our_physician.npi, "near": referring_provider.npi, "far": far_provider.npi}


def test_the_day_window_and_year_come_from_the_file_name():
    assert window_from_name("physician-shared-patient-patterns-2015-days30.txt") == 30
    assert window_from_name("pspp_2014_180day.csv") == 180
    assert window_from_name("physician-shared-patient-patterns-2015.txt") is None


def test_cms_pairs_touching_our_providers_or_providers_near_our_sites_are_kept(db, tmp_path, market, reader):
    stranger1, stranger2 = npi(1), npi(2)
    path = write_shared_patients(
        tmp_path / "physician-shared-patient-patterns-2015-days30.txt",
        [
            (market["near"], market["ours"], 60, 35, 2),  # kept: both ours and near
            (market["far"], market["ours"], 30, 12, 0),  # kept: touches ours
            (stranger1, market["near"], 25, 14, 1),  # kept: touches a provider near our sites
            (stranger1, stranger2, 99, 50, 5),  # dropped
            (market["far"], stranger2, 40, 20, 0),  # dropped: Cleveland is not near
        ],
    )
    out = run_import("shared-patients", path)
    assert "CMS shared patient patterns, 30-day window" in out
    assert "5 rows read, 3 kept: 3 inserted" in out
    dataset = SharedPatientDataset.objects.get()
    assert (dataset.key, dataset.year, dataset.window_days, dataset.pairs) == ("cms-2015-30d", 2015, 30, 3)
    pair = SharedPatientPair.objects.get(from_npi=market["near"], to_npi=market["ours"])
    assert (pair.patients, pair.transactions, pair.same_day) == (35, 60, 2)
    assert "already imported" in run_import("shared-patients", path)
    assert "0 inserted, 0 updated, 3 unchanged" in run_import("shared-patients", path, "--force")


def test_a_careset_hop_teaming_file_is_recognised_by_its_header(db, tmp_path, market, reader):
    path = tmp_path / "DocGraph_Hop_Teaming_2018.csv"
    path.write_text(
        "from_npi,to_npi,patient_count,transaction_count,average_day_wait,std_day_wait\n"
        f"{market['near']},{market['ours']},44,90,12.5,8.25\n"
        f"{npi(1)},{npi(2)},30,31,1.0,0.5\n"
    )
    out = run_import("shared-patients", path)
    assert "CareSet Hop Teaming" in out and "1 kept: 1 inserted" in out
    pair = SharedPatientPair.objects.get()
    assert (pair.patients, pair.transactions, pair.average_day_wait, pair.std_day_wait) == (
        44,
        90,
        12.5,
        8.25,
    )
    assert SharedPatientDataset.objects.get().key == "careset-2018"


def test_a_new_file_for_the_same_dataset_updates_the_counts(db, tmp_path, market, reader):
    first = write_shared_patients(
        tmp_path / "pspp-2015-days30.txt", [(market["near"], market["ours"], 60, 35, 2)]
    )
    run_import("shared-patients", first)
    second = write_shared_patients(
        tmp_path / "pspp-2015-days30-v2.txt",
        [(market["near"], market["ours"], 80, 41, 2), (market["ours"], market["near"], 20, 11, 0)],
    )
    out = run_import("shared-patients", second, "--window", "30", "--year", "2015")
    assert "1 inserted, 1 updated" in out
    assert SharedPatientPair.objects.get(from_npi=market["near"]).patients == 41


def test_bad_pair_rows_are_named_and_the_rest_kept(db, tmp_path, market, reader):
    path = tmp_path / "pspp-2015-days60.txt"
    path.write_text(
        f"{market['near']},{market['ours']},60,35,2\n"
        f"{market['near']},1234567890,60,35,2\n"  # check digit
        f"{market['near']},{market['ours']}x,60,35,2\n"  # not an NPI (kept by nobody: no match)
        f"{market['ours']},{market['near']},lots,35,2\n"  # not a number: DuckDB reads VARCHAR, we refuse
        f'{market["far"]},{market["near"]},10,"11,2\n'  # broken quote
    )
    out = run_import("shared-patients", path)
    assert "row 2: NPI 1234567890 fails the check digit" in out
    assert "row 4:" in out and "'lots' is not a number" in out
    assert "row 5: unreadable row" in out
    assert SharedPatientPair.objects.count() == 1


def test_npis_with_spaces_around_them_are_matched_and_the_fast_reader_reads_the_file_alone(
    db, tmp_path, market, reader, caplog
):
    # The fast reader first picks rows by the NPIs as written, and lets through every NPI that is
    # not 10 characters long: a padded NPI is then matched once trimmed, as the careful reader does.
    caplog.set_level("INFO", logger="liaison.marketdata.runs")
    path = tmp_path / "pspp-2015-days30.txt"
    path.write_text(
        f" {market['near']},{market['ours']} ,60,35,2\n"
        f"{market['far']},{npi(7)}  ,60,35,2\n"  # touches no one of ours
        f"{market['far']}, {market['ours']},12,11,0\n"
    )
    out = run_import("shared-patients", path)
    assert "3 rows read, 2 kept: 2 inserted" in out
    assert set(SharedPatientPair.objects.values_list("from_npi", "to_npi")) == {
        (market["near"], market["ours"]),
        (market["far"], market["ours"]),
    }
    assert "read on with DuckDB" not in caplog.text


def test_a_count_that_is_not_a_number_hands_the_file_to_the_careful_reader(
    db, tmp_path, market, reader, caplog
):
    caplog.set_level("INFO", logger="liaison.marketdata.runs")
    path = tmp_path / "pspp-2015-days30.txt"
    path.write_text(
        f"{market['near']},{market['ours']},60,35,2\n"
        f"{npi(7)},{npi(8)},60,n/a,2\n"  # a pair we would not keep: still a row Polars cannot read
        f"{market['far']},{market['ours']},12,11,0\n"
    )
    out = run_import("shared-patients", path)
    assert "3 rows read, 2 kept: 2 inserted" in out and "0 rejected" in out
    assert ("read on with DuckDB" in caplog.text) == (reader == "polars")


def test_counts_are_rounded_half_to_even_and_impossible_ones_refused(
    db, tmp_path, market, reader, caplog, monkeypatch
):
    # Most rows are checked by the scan, the others by Python: both must round and refuse alike.
    caplog.set_level("INFO", logger="liaison.marketdata.runs")
    streams = []
    monkeypatch.setattr(
        PolarsScan, "stream", lambda scan, plan, real=PolarsScan.stream: streams.append(1) or real(scan, plan)
    )
    path = tmp_path / "pspp-2015-days90.txt"
    path.write_text(
        f"{market['near']},{market['ours']},60,34.5,2\n"
        f"{market['ours']},{market['near']},60.5,35.5,2.5\n"
        f"{market['far']},{market['ours']},10,-3,0\n"
        f"{market['ours']},{market['far']},10,inf,0\n"
        f"{market['far']},{market['near']},10,,0\n"
        f"{market['near']},{market['far']},1e300,12,0\n"
    )
    out = run_import("shared-patients", path)
    got = {
        (p.from_npi, p.to_npi): (p.patients, p.transactions, p.same_day)
        for p in SharedPatientPair.objects.all()
    }
    assert got == {
        (market["near"], market["ours"]): (34, 60, 2),
        (market["ours"], market["near"]): (36, 60, 2),
    }
    assert "row 3:" in out and "a count is negative" in out
    assert "row 4:" in out and "patient count inf is out of range" in out
    assert "row 5:" in out and "no patient count" in out
    assert "row 6:" in out and "pair/transaction count 1e+300 is out of range" in out
    assert "read on with DuckDB" not in caplog.text  # every row was readable: the reader kept them all
    assert len(streams) == (reader == "polars")


def test_the_readers_npi_check_agrees_with_the_directorys():
    import random

    import duckdb
    import polars as pl

    from liaison.marketdata.nppes_rows import npi_problem
    from liaison.marketdata.scan import NPI_OK, npi_ok

    rng = random.Random(7)
    values = [str(rng.randint(1_000_000_000, 2_999_999_999)) for _ in range(5000)]
    values += [make_npi(i) for i in range(1, 200)]  # all valid
    values += ["", "123", "3123456789", "12345678 3", "1234567893x", " 1234567893", "1234567893\n"]
    values += ["１２３４５６７８９３", "1٢٣٤٥٦٧٨٩٣"]  # digits, but not ASCII ones
    expected = [npi_problem(v) is None for v in values]
    assert 200 < sum(expected) < len(values)  # both kinds are there
    con = duckdb.connect()
    con.execute(NPI_OK)
    in_sql = [
        ok for (ok,) in con.execute("SELECT npi_ok(v) FROM unnest($1::VARCHAR[]) t(v)", [values]).fetchall()
    ]
    in_polars = pl.DataFrame({"v": values}).select(npi_ok(pl.col("v")).alias("ok"))["ok"].to_list()
    assert in_sql == expected
    assert in_polars == expected


def test_the_wrong_kind_of_file_and_a_missing_window_are_explained(db, tmp_path, market):
    with pytest.raises(CommandError, match="cannot tell the day window from the file name: give --window"):
        run_import(
            "shared-patients",
            write_shared_patients(tmp_path / "pairs.txt", [(market["near"], market["ours"], 1, 1, 1)]),
        )
    nucc = tmp_path / "taxonomy.csv"
    nucc.write_text("Code,Grouping,Classification\n207Q00000X,Physicians,Family Medicine\n")
    with pytest.raises(
        CommandError, match=r"not a shared-patient file.*NUCC taxonomy file: use `liaison import taxonomy"
    ):
        run_import("shared-patients", nucc)


def test_without_our_sites_and_physicians_there_is_nothing_to_keep(db, tmp_path, reader):
    path = write_shared_patients(tmp_path / "pspp-2015-days30.txt", [(npi(1), npi(2), 40, 20, 0)])
    with pytest.raises(CommandError, match="no provider to keep pairs for"):
        run_import("shared-patients", path)


def test_a_shared_patient_import_killed_half_way_resumes(
    db, tmp_path, monkeypatch, market, referring_location, reader
):
    others = []
    for i in range(30):
        p = directory.create_provider(
            actor="test",
            first_name="N",
            last_name=f"Near{i}",
            npi=npi(100 + i),
            locations=[referring_location],
        )
        others.append(p.npi)
    rows = [(o, market["ours"], 20 + i, 11 + i, 0) for i, o in enumerate(others)]
    path = write_shared_patients(tmp_path / "pspp-2015-days90.txt", rows)

    def kill(run, batch_no):
        if batch_no == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(runs, "batch_committed", kill)
    with pytest.raises(CommandError, match="interrupted; run the same command again to resume"):
        run_import("shared-patients", path, "--batch-size", "7")
    assert SharedPatientPair.objects.count() == 14
    monkeypatch.setattr(runs, "batch_committed", lambda run, batch_no: None)
    out = run_import("shared-patients", path, "--batch-size", "7")
    assert "30 kept: 30 inserted" in out and "attempt 2" in out
    assert sorted(SharedPatientPair.objects.values_list("patients", flat=True)) == list(range(11, 41))
    assert ImportRun.objects.get().status == "succeeded"


# --- Medicare utilisation -------------------------------------------------------------------

SERVICE_HEADER = (
    "Rndrng_NPI,Rndrng_Prvdr_Last_Org_Name,Rndrng_Prvdr_First_Name,Rndrng_Prvdr_Type,HCPCS_Cd,HCPCS_Desc,"
    "HCPCS_Drug_Ind,Place_Of_Srvc,Tot_Benes,Tot_Srvcs,Tot_Bene_Day_Srvcs,Avg_Sbmtd_Chrg,Avg_Mdcr_Alowd_Amt,"
    "Avg_Mdcr_Pymt_Amt\n"
)
PROVIDER_HEADER = (
    "Rndrng_NPI,Rndrng_Prvdr_Last_Org_Name,Tot_HCPCS_Cds,Tot_Benes,Tot_Srvcs,Tot_Mdcr_Pymt_Amt,Bene_Avg_Age,"
    "Bene_Dual_Cnt,Bene_Ndual_Cnt,Bene_Avg_Risk_Scre\n"
)


def test_utilisation_by_provider_and_service_keeps_directory_providers(db, tmp_path, market):
    path = tmp_path / "MUP_PHY_R24_P05_V10_D22_Prov_Svc.csv"
    path.write_text(
        SERVICE_HEADER
        + f'{market["near"]},FAMILY,FRANK,Family Practice,99214,"Established patient office visit, 30-39 minutes",N,O,310,845,845,210.5,130.2,101.75\n'
        + f"{market['near']},FAMILY,FRANK,Family Practice,20610,Injection of large joint,N,O,45,61,61,150,80,62.1\n"
        + f"{npi(5)},STRANGER,SAM,Internal Medicine,99213,Office visit,N,O,200,300,300,100,70,55\n"
    )
    out = run_import("utilization", path)
    assert "by provider and service, 2022" in out and "3 rows read, 2 kept: 2 inserted" in out
    visit = ProcedureVolume.objects.get(hcpcs_code="99214")
    assert (visit.year, visit.beneficiaries, visit.services, visit.average_payment) == (
        2022,
        310,
        845.0,
        101.75,
    )
    assert visit.hcpcs_description == "Established patient office visit, 30-39 minutes"
    assert "already imported" in run_import("utilization", path)


def test_utilisation_by_provider_gives_the_dual_eligible_share(db, tmp_path, market):
    path = tmp_path / "MUP_PHY_R24_P05_V10_D22_Prov.csv"
    path.write_text(
        PROVIDER_HEADER
        + f"{market['near']},FAMILY,112,640,3120,150000.5,72,160,480,1.12\n"
        + f"{market['ours']},BONE,40,300,900,90000,70,,290,1.4\n"
    )
    out = run_import("utilization", path)
    assert "by provider, 2022" in out and "2 inserted" in out
    near = MedicareProfile.objects.get(npi=market["near"])
    assert near.beneficiaries == 640 and near.dual_share == 0.25
    ours = MedicareProfile.objects.get(npi=market["ours"])
    assert ours.dual_eligible is None and ours.dual_share is None  # CMS suppressed it


def test_utilisation_needs_a_year_and_the_right_file(db, tmp_path, market):
    path = tmp_path / "utilisation.csv"
    path.write_text(PROVIDER_HEADER + f"{market['near']},FAMILY,1,20,20,1,70,,,1\n")
    with pytest.raises(CommandError, match="cannot tell the data year from the file name: give --year"):
        run_import("utilization", path)
    assert "1 inserted" in run_import("utilization", path, "--year", "2021")
    assert MedicareProfile.objects.get().year == 2021
    with pytest.raises(CommandError, match=r"not a Medicare utilisation file.*NPPES"):
        run_import("utilization", write_nppes_like(tmp_path))


def test_a_bad_number_in_utilisation_is_rejected_with_its_row(db, tmp_path, market):
    path = tmp_path / "MUP_PHY_R24_P05_V10_D22_Prov.csv"
    path.write_text(
        PROVIDER_HEADER
        + f"{market['near']},FAMILY,112,many,3120,150000.5,72,160,480,1.12\n"
        + f"{market['ours']},BONE,40,300,900,90000,70,,290,1.4\n"
    )
    out = run_import("utilization", path)
    assert "row 2: NPI " in out and "beneficiaries 'many' is not a number" in out
    assert list(MedicareProfile.objects.values_list("npi", flat=True)) == [market["ours"]]


def test_utilisation_import_runs_again_as_a_no_op_even_with_force(db, tmp_path, market):
    path = tmp_path / "MUP_PHY_R24_P05_V10_D22_Prov.csv"
    path.write_text(PROVIDER_HEADER + f"{market['near']},FAMILY,112,640,3120,150000.5,72,160,480,1.12\n")
    UtilizationImport(path, actor="test").execute()
    again = UtilizationImport(path, actor="test", force=True)
    again.execute()
    assert (again.run.inserted, again.run.updated, again.run.unchanged) == (0, 0, 1)
    assert MedicareProfile.objects.count() == 1


def write_nppes_like(tmp_path):
    from tests.marketdata_files import columbus, write_nppes

    return write_nppes(tmp_path / "npidata.csv", [columbus(1)])


def test_make_npi_and_our_test_npis_do_not_collide():
    assert make_npi(1) != npi(1)
    assert SharedPatientsImport.kind == "shared-patients"
