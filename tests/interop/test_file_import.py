"""CSV/XLSX import: the column mapping is saved and proposed again, the preview shows the rows as
they will be imported with per-row errors, the import is all or nothing (unless bad rows are
explicitly skipped), and importing the same file again adds nothing twice."""

import datetime as dt
import io

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone
from openpyxl import Workbook

from liaison.audit.models import AuditEvent
from liaison.core.models import JobRun
from liaison.interop import services
from liaison.interop.bulk import import_table
from liaison.interop.models import ColumnMapping, ReferralImport
from liaison.interop.tabular import MappingSpec, suggest_columns
from liaison.referrals.models import Referral, ReferralEvent, Status
from tests.conftest import make_npi

HEADER = "Referral #,Patient Name,DOB,Phone,MRN,Insurance,Referring NPI,Referring Provider,Date Received,Reason,Dx,Status,Appt Date"


def csv_file(*rows: str) -> bytes:
    return ("\n".join([HEADER, *rows]) + "\n").encode()


def good_rows(referring_npi: str) -> list[str]:
    return [
        f'R-1,"Quackenbush, Zelda",04/02/1961,614-555-0199,MRN-1,Medicare,{referring_npi},"Family, Frank",11/02/2026,Right knee OA,M1711,,',
        'R-2,"Okafor, Chidi",12/31/1975,,MRN-2,Aetna,1999999999,"Unknown, Ursula",11/03/2026,Hip pain,M16.12,Scheduled,11/20/2026 09:30',
        'R-3,"Lindqvist, Maja",07/14/1990,614-555-0111,MRN-3,Anthem,,"Stranger, Sam",11/04/2026,Shoulder,,Declined,',
    ]


COLUMNS = {
    "row_id": "Referral #",
    "patient_name": "Patient Name",
    "patient_dob": "DOB",
    "patient_phone": "Phone",
    "patient_mrn": "MRN",
    "payer": "Insurance",
    "referring_npi": "Referring NPI",
    "referring_name": "Referring Provider",
    "received_date": "Date Received",
    "reason": "Reason",
    "icd10_codes": "Dx",
    "status": "Status",
    "appointment_date": "Appt Date",
}


@pytest.fixture
def mapping(db):
    return services.save_mapping(
        actor="test",
        name="Practice export",
        columns=COLUMNS,
        dob_format="%m/%d/%Y",
        date_format="%m/%d/%Y",
        headers=HEADER.split(","),
    )


def spec(mapping: ColumnMapping) -> MappingSpec:
    return services.mapping_spec(mapping)


def test_common_export_headers_are_recognised_for_a_first_mapping():
    suggested = suggest_columns(
        ["Last Name", "First Name", "DOB", "Referring NPI", "Insurance", "Date Received"]
    )
    assert suggested == {
        "patient_last_name": "Last Name",
        "patient_first_name": "First Name",
        "patient_dob": "DOB",
        "referring_npi": "Referring NPI",
        "payer": "Insurance",
        "received_date": "Date Received",
    }


def test_a_file_imports_with_the_same_rules_as_the_intake_form(
    mapping, referring_provider, referring_location
):
    result = import_table(csv_file(*good_rows(referring_provider.npi)), "csv", spec(mapping), actor="test")

    assert (result.created, result.error_rows) == (3, 0)
    zelda = Referral.objects.get(external_id="R-1")
    assert (zelda.patient_last_name, zelda.patient_first_name) == ("Quackenbush", "Zelda")
    assert zelda.patient_dob == dt.date(1961, 4, 2) and zelda.patient_phone == "(614) 555-0199"
    assert zelda.referring_provider == referring_provider and zelda.referring_location == referring_location
    assert zelda.icd10_codes == "M17.11" and zelda.payer == "Medicare" and zelda.channel == "import"
    assert zelda.received_at.date() == dt.date(2026, 11, 2)
    assert zelda.source_system == "csv:practice-export"
    assert zelda.patient_key and zelda.mrn_key  # the blind indexes, as the intake form sets them
    assert [e.to_status for e in zelda.events.all()] == ["received"]
    chidi = Referral.objects.get(external_id="R-2")
    assert chidi.referrer_to_match and chidi.referrer_as_received == {
        "npi": "1999999999",
        "first_name": "Ursula",
        "last_name": "Unknown",
    }
    assert chidi.status == Status.SCHEDULED and timezone.localtime(chidi.appointment_at).hour == 9
    assert [(e.from_status, e.to_status) for e in chidi.events.order_by("pk")] == [
        ("", "received"),
        ("received", "scheduled"),
    ]
    maja = Referral.objects.get(external_id="R-3")
    assert maja.status == Status.DECLINED and maja.events.last().data["decline_reason"] == "other"
    # One audit row for the whole import, naming no patient.
    audit = AuditEvent.objects.get(action="import")
    assert audit.phi and audit.changes["imported"] == 3 and "Quackenbush" not in str(audit.changes)
    # The referring practice is now a referring account in the outreach pipeline.
    from liaison.outreach.models import Account

    account = Account.objects.get(practice=referring_location.practice)
    assert account.stage == "referring" and account.first_referral_at == zelda.received_at


def test_importing_the_same_file_again_adds_nothing(mapping, referring_provider):
    content = csv_file(*good_rows(referring_provider.npi))
    import_table(content, "csv", spec(mapping), actor="test")
    counts = (Referral.objects.count(), ReferralEvent.objects.count())

    again = import_table(content, "csv", spec(mapping), actor="test")

    assert (again.created, again.existing) == (0, 3)
    assert (Referral.objects.count(), ReferralEvent.objects.count()) == counts


def test_without_a_row_id_the_patient_referrer_and_date_recognise_a_row(db, referring_provider):
    columns = {k: v for k, v in COLUMNS.items() if k != "row_id"}
    no_id = services.save_mapping(
        actor="test",
        name="No id",
        columns=columns,
        dob_format="%m/%d/%Y",
        date_format="%m/%d/%Y",
        headers=HEADER.split(","),
    )
    rows = good_rows(referring_provider.npi)
    content = csv_file(*rows, rows[0].replace("R-1", "R-1b"))  # the same referral listed twice

    first = import_table(content, "csv", spec(no_id), actor="test")
    again = import_table(content, "csv", spec(no_id), actor="test")

    assert (first.created, first.duplicates) == (3, 1)
    assert (again.created, again.existing) == (0, 4)
    assert Referral.objects.filter(external_id__startswith="auto:").count() == 3
    assert "Quackenbush" not in Referral.objects.first().external_id  # a keyed hash, not the name


BAD_ROWS = [
    (
        'R-9,"Nobody, Noname",13/45/1961,,,,,,11/02/2026,,,,',
        "Date of birth: not a date in the format MM/DD/YYYY.",
    ),
    (
        'R-9,"Nobody, Noname",04/02/1961,555-01,,,,,11/02/2026,,,,',
        "Patient phone: Enter a 10-digit US phone number",
    ),
    ('R-9,"Nobody",04/02/1961,,,,,,11/02/2026,,,,', "Patient first name: Required."),
    ('R-9,"Nobody, Noname",,,,,,,11/02/2026,,,,', "Date of birth: Required."),
    ('R-9,"Nobody, Noname",04/02/1961,,,,,,11/02/2099,,,,', "Received date: in the future."),
    ('R-9,"Nobody, Noname",04/02/1961,,,,,,11/02/2026,,XYZ,,', "ICD-10 codes: a code is not an ICD-10 code"),
    ('R-9,"Nobody, Noname",04/02/1961,,,,,,11/02/2026,,,Teleported,', "Status: not a referral status"),
    (
        'R-9,"Nobody, Noname",04/02/1961,,,,,,11/02/2026,,,Scheduled,',
        "Appointment date: a scheduled or no-show",
    ),
    ('R-1,"Nobody, Noname",04/02/1961,,,,,,11/02/2026,,,,', "Referral id: the same as row 2."),
    (',"Nobody, Noname",04/02/1961,,,,,,11/02/2026,,,,', "Referral id: missing."),
]


@pytest.mark.parametrize(("bad", "message"), BAD_ROWS)
def test_one_bad_row_and_nothing_is_imported_with_the_row_and_the_reason(
    mapping, referring_provider, bad, message
):
    result = import_table(
        csv_file(*good_rows(referring_provider.npi), bad), "csv", spec(mapping), actor="test"
    )

    assert result.created == 0 and result.error_rows == 1
    (number, text), *_ = result.errors
    assert number == 5 and text.startswith(message)
    assert "Nobody" not in text and "Noname" not in text  # errors name the field, never the value
    assert not Referral.objects.exists() and not ReferralEvent.objects.exists()
    assert not AuditEvent.objects.filter(action="import").exists()


def test_bad_rows_can_be_skipped_on_request(mapping, referring_provider):
    content = csv_file(
        *good_rows(referring_provider.npi), 'R-9,"Nobody, Noname",13/45/1961,,,,,,11/02/2026,,,,'
    )

    result = import_table(content, "csv", spec(mapping), actor="test", skip_bad_rows=True)

    assert (result.created, result.error_rows) == (3, 1)
    assert AuditEvent.objects.get(action="import").changes["skipped_error_rows"] == 1


def test_an_excel_file_with_real_dates_imports_like_a_csv(mapping, referring_provider):
    book = Workbook()
    sheet = book.active
    sheet.append(HEADER.split(","))
    sheet.append(
        [
            "R-1",
            "Quackenbush, Zelda",
            dt.datetime(1961, 4, 2),
            6145550199,
            "MRN-1",
            "Medicare",
            int(referring_provider.npi),
            "Family, Frank",
            dt.datetime(2026, 11, 2, 8, 15),
            "Knee",
            "M17.11",
            None,
            None,
        ]
    )
    buffer = io.BytesIO()
    book.save(buffer)

    result = import_table(buffer.getvalue(), "xlsx", spec(mapping), actor="test")

    assert result.created == 1, result.errors
    zelda = Referral.objects.get()
    assert zelda.patient_dob == dt.date(1961, 4, 2) and zelda.patient_phone == "(614) 555-0199"
    assert zelda.referring_provider == referring_provider
    assert timezone.localtime(zelda.received_at).hour == 8


def test_a_saved_mapping_is_proposed_again_for_the_same_header(client_for, mapping):
    c = client_for("coordinator")
    upload = c.post(reverse("interop:upload"), {"file": _named(csv_file(), "export.csv")})
    assert upload.status_code == 200  # a header alone: refused
    assert "no rows" in upload.content.decode()

    response = c.post(
        reverse("interop:upload"),
        {"file": _named(csv_file('R-1,"A, B",01/01/1950,,,,,,11/02/2026,,,,'), "export.csv")},
    )
    imported = ReferralImport.objects.get()
    assert response.url == reverse("interop:mapping", args=[imported.pk])
    page = c.get(response.url).content.decode()
    assert "The saved mapping <strong>Practice export</strong> fits this file" in page
    assert 'value="Practice export"' in page


def _named(content: bytes, name: str) -> io.BytesIO:
    f = io.BytesIO(content)
    f.name = name
    return f


def test_upload_map_preview_and_import_through_the_pages(
    client_for, referring_provider, django_capture_on_commit_callbacks
):
    c = client_for("coordinator")
    content = csv_file(
        *good_rows(referring_provider.npi), 'R-9,"Nobody, Noname",13/45/1961,,,,,,11/02/2026,,,,'
    )
    c.post(reverse("interop:upload"), {"file": _named(content, "referrals-nov.csv")})
    upload = ReferralImport.objects.get()
    assert upload.row_count == 4 and upload.kind == "csv"
    # The file is kept encrypted: its bytes on disk say nothing about the patients.
    with upload.file.open("rb") as f:
        assert b"Quackenbush" not in f.read()

    form = {f"col_{k}": v for k, v in COLUMNS.items()} | {
        "name": "Nov export",
        "dob_format": "%m/%d/%Y",
        "date_format": "%m/%d/%Y",
    }
    missing = c.post(reverse("interop:mapping", args=[upload.pk]), {**form, "col_patient_dob": ""})
    assert "Map the date of birth column." in missing.content.decode()
    saved = c.post(reverse("interop:mapping", args=[upload.pk]), form)
    assert saved.url == reverse("interop:preview", args=[upload.pk])

    preview = c.get(saved.url).content.decode()
    assert "Quackenbush, Zelda" in preview and "04/02/1961" in preview
    assert "Row 5: Date of birth: not a date in the format MM/DD/YYYY." in preview
    assert "Skip the 1 bad row and import the others" in preview
    assert AuditEvent.objects.filter(action="preview", actor=c.user, phi=True).exists()

    with django_capture_on_commit_callbacks(execute=True):  # the job runs after the commit
        response = c.post(reverse("interop:commit", args=[upload.pk]), {"skip_bad_rows": "on"})
    assert response.url == reverse("interop:status", args=[upload.pk])
    upload.refresh_from_db()
    assert upload.status == "imported" and upload.result["imported"] == 3
    assert upload.result["errors"] == [[5, "Date of birth: not a date in the format MM/DD/YYYY."]]
    assert not upload.file  # deleted once imported
    run = JobRun.objects.get()
    assert run.status == "succeeded" and run.progress_done == 4 and run.progress_total == 4
    status_page = c.get(response.url).content.decode()
    assert "Imported" in status_page and "Row 5:" in status_page
    # Importing it twice is refused.
    c.post(reverse("interop:commit", args=[upload.pk]))
    assert JobRun.objects.count() == 1


def test_an_import_with_errors_fails_whole_and_can_be_retried(
    client_for, mapping, referring_provider, django_capture_on_commit_callbacks
):
    c = client_for("manager")
    content = csv_file(
        *good_rows(referring_provider.npi), 'R-9,"Nobody, Noname",13/45/1961,,,,,,11/02/2026,,,,'
    )
    c.post(reverse("interop:upload"), {"file": _named(content, "x.csv")})
    upload = ReferralImport.objects.get()
    ReferralImport.objects.filter(pk=upload.pk).update(mapping=mapping)

    with django_capture_on_commit_callbacks(execute=True):
        c.post(reverse("interop:commit", args=[upload.pk]))

    upload.refresh_from_db()
    assert upload.status == "failed" and upload.file  # kept for another try
    assert not Referral.objects.exists()
    run = JobRun.objects.get()
    assert run.status == "failed" and run.message.startswith("1 row(s) have errors: nothing was imported.")
    with django_capture_on_commit_callbacks(execute=True):
        c.post(reverse("interop:commit", args=[upload.pk]), {"skip_bad_rows": "on"})
    assert Referral.objects.count() == 3


@pytest.mark.parametrize("role", ["liaison", "analyst", "physician"])
def test_roles_other_than_coordinators_managers_and_admins_cannot_import(client_for, role, mapping):
    c = client_for(role)
    assert c.get(reverse("interop:upload")).status_code == 403
    response = c.post(reverse("interop:upload"), {"file": _named(csv_file(), "x.csv")})
    assert response.status_code == 403 and not ReferralImport.objects.exists()
    assert AuditEvent.objects.filter(action="denied", actor=c.user).count() == 2


def test_a_coordinator_sees_only_their_own_uploads(client_for, make_user):
    owner = client_for("coordinator", email="owner@example.org")
    owner.post(
        reverse("interop:upload"),
        {"file": _named(csv_file('R-1,"A, B",01/01/1950,,,,,,11/02/2026,,,,'), "x.csv")},
    )
    upload = ReferralImport.objects.get()
    other = client_for("coordinator")
    for name in ("status", "mapping", "preview"):
        assert other.get(reverse(f"interop:{name}", args=[upload.pk])).status_code == 404
    assert client_for("manager").get(reverse("interop:status", args=[upload.pk])).status_code == 200


def test_the_list_of_recent_imports_takes_a_fixed_number_of_queries(client_for, django_assert_num_queries):
    c = client_for("manager")
    for i in range(3):
        c.post(
            reverse("interop:upload"),
            {"file": _named(csv_file(f'R-{i},"A, B",01/01/1950,,,,,,11/02/2026,,,,'), "x.csv")},
        )
    with django_assert_num_queries(
        4
    ):  # session, user, imports (with mapping, job, uploader), referral counts
        response = c.get(reverse("interop:upload"))
    assert response.content.decode().count("/referrals/import/") >= 3


def test_bad_files_are_refused_with_a_clear_message(client_for):
    c = client_for("coordinator")
    for content, name, message in [
        (b"", "x.csv", "is empty"),
        (b"PK\x03\x04 not really a zip", "x.xlsx", "cannot be read"),
        (b"\xd0\xcf\x11\xe0 old excel", "x.xls", "Old Excel files"),
        (b"Last Name,DOB\n", "x.csv", "no rows"),
    ]:
        response = c.post(reverse("interop:upload"), {"file": _named(content, name)})
        assert response.status_code == 200 and message in response.content.decode(), name
    assert not ReferralImport.objects.exists()


def test_the_import_command_uses_a_saved_mapping(mapping, referring_provider, tmp_path, capsys):
    path = tmp_path / "export.csv"
    path.write_bytes(csv_file(*good_rows(referring_provider.npi)))

    call_command("import", "referrals", str(path), "--mapping", "practice EXPORT", "--dry-run")
    assert (
        "checked (dry run): 3 rows, 0 imported" in capsys.readouterr().out and not Referral.objects.exists()
    )
    call_command("import", "referrals", str(path), "--mapping", "Practice export")
    assert "done: 3 rows, 3 imported" in capsys.readouterr().out
    call_command("import", "referrals", str(path), "--mapping", "Practice export")
    assert "0 imported, 3 already imported" in capsys.readouterr().out

    with pytest.raises(CommandError, match="no saved mapping named 'nope'"):
        call_command("import", "referrals", str(path), "--mapping", "nope")
    path.write_bytes(csv_file('R-9,"Nobody, Noname",13/45/1961,,,,,,11/02/2026,,,,'))
    with pytest.raises(CommandError, match="nothing imported"):
        call_command("import", "referrals", str(path), "--mapping", "Practice export")
    assert "row 2: Date of birth: not a date" in capsys.readouterr().out


def test_renaming_a_mapping_keeps_recognising_the_rows_it_imported(mapping, referring_provider):
    content = csv_file(*good_rows(referring_provider.npi))
    import_table(content, "csv", spec(mapping), actor="test")
    ColumnMapping.objects.filter(pk=mapping.pk).update(name="Renamed")
    mapping.refresh_from_db()

    assert import_table(content, "csv", spec(mapping), actor="test").existing == 3


def test_a_large_file_imports_in_chunks_in_one_transaction(mapping, referring_provider):
    npi = make_npi(2)
    rows = [
        f'R-{i},"Patient{i}, Pat",04/02/1961,,MRN-{i},Medicare,{npi},"Family, Frank",11/02/2026,Knee,M17.11,,'
        for i in range(2000)
    ]
    result = import_table(csv_file(*rows), "csv", spec(mapping), actor="test")
    assert result.created == 2000 and Referral.objects.count() == 2000
    assert result.last_id - result.first_id == 1999
    assert Referral.objects.filter(referring_provider=referring_provider).count() == 2000
    assert ReferralEvent.objects.count() == 2000


def test_worker_processes_build_the_same_referrals_as_the_main_process(mapping, referring_provider):
    rows = good_rows(referring_provider.npi) * 1 + [
        f'R-{i},"Patient{i}, Pat",04/02/1961,,MRN-{i},Medicare,{referring_provider.npi},"Family, Frank",11/02/2026,Knee,M17.11,,'
        for i in range(10, 310)
    ]
    bad = 'R-9,"Nobody, Noname",13/45/1961,,,,,,11/02/2026,,,,'

    refused = import_table(csv_file(*rows, bad), "csv", spec(mapping), actor="test", workers=2)
    assert (refused.created, refused.error_rows, refused.errors[0][0]) == (0, 1, 305)
    assert not Referral.objects.exists()

    result = import_table(csv_file(*rows), "csv", spec(mapping), actor="test", workers=2)

    assert result.created == 303
    zelda = Referral.objects.get(external_id="R-1")  # encrypted in a worker, read back here
    assert (zelda.patient_last_name, zelda.patient_dob) == ("Quackenbush", dt.date(1961, 4, 2))
    assert zelda.referring_provider == referring_provider and zelda.patient_key
    assert Referral.objects.get(external_id="R-2").status == Status.SCHEDULED
    assert import_table(csv_file(*rows), "csv", spec(mapping), actor="test", workers=2).existing == 303


@pytest.mark.parametrize(
    ("rows", "busy_share", "expected"),
    [(100_000, 0.0, 2), (100_000, 0.5, 0), (100_000, 0.2, 2), (5_000, 0.0, 0)],
)
def test_worker_processes_start_only_for_large_files_on_idle_cpus(monkeypatch, rows, busy_share, expected):
    from liaison.interop import parallel

    # cpu user nice system idle iowait ...: two readings 0.3 s apart on a machine with 2 CPUs
    readings = iter([[0, 0, 0, 0, 0], [int(200 * busy_share), 0, 0, int(200 * (1 - busy_share)), 0]])
    monkeypatch.setattr(parallel, "_cpu_times", lambda: next(readings))
    monkeypatch.setattr(parallel.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: 2)

    assert parallel.worker_count(rows) == expected
