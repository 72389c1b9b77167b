"""`liaison import taxonomy FILE`: current and older NUCC headers, idempotent, all-or-nothing."""

import pytest
from django.core.management import CommandError, call_command

from liaison.audit.models import AuditEvent
from liaison.directory.models import Taxonomy
from tests.external import sample


def test_the_built_in_common_specialties_are_there_without_any_import(db):
    assert Taxonomy.objects.filter(code="207Q00000X", classification="Family Medicine").exists()
    assert Taxonomy.objects.filter(code="207X00000X").exists()
    assert 50 <= Taxonomy.objects.count() < 100


def test_importing_the_current_nucc_file(db, capsys):
    call_command("import", "taxonomy", str(sample("nucc/nucc_taxonomy_251.csv")))
    out = capsys.readouterr().out
    assert Taxonomy.objects.count() == 883
    assert "883 codes read" in out
    allergy = Taxonomy.objects.get(code="207KA0200X")
    assert (allergy.grouping, allergy.classification, allergy.specialization) == (
        "Allopathic & Osteopathic Physicians",
        "Allergy & Immunology",
        "Allergy",
    )
    assert allergy.display_name == "Allergy Physician"
    event = AuditEvent.objects.get(action="import", object_type="directory.taxonomy")
    assert event.object_repr == "nucc_taxonomy_251.csv" and event.changes["created"] > 800


def test_a_second_import_of_the_same_file_changes_nothing(db, capsys):
    path = str(sample("nucc/nucc_taxonomy_251.csv"))
    call_command("import", "taxonomy", path)
    capsys.readouterr()
    events = AuditEvent.objects.count()
    call_command("import", "taxonomy", path)
    assert "0 new, 0 updated, 883 unchanged" in capsys.readouterr().out
    assert AuditEvent.objects.count() == events


def test_an_older_version_then_a_newer_one_updates_definitions(db, capsys):
    call_command("import", "taxonomy", str(sample("nucc/nucc_taxonomy_220.csv")))
    old = Taxonomy.objects.get(code="207KA0200X").definition
    call_command("import", "taxonomy", str(sample("nucc/nucc_taxonomy_251.csv")))
    assert old == "Definition to come..."
    assert Taxonomy.objects.get(code="207KA0200X").definition.startswith("A physician who specializes")


def test_the_older_header_with_type_and_no_display_name_is_read(db, tmp_path, capsys):
    """Files before v16 name the Grouping column 'Type' and have no Display Name or Section."""
    lines = sample("nucc/nucc_taxonomy_220.csv").read_text(encoding="utf-8").splitlines()
    import csv
    import io

    rows = list(csv.reader(io.StringIO("\n".join(lines))))
    old = io.StringIO()
    writer = csv.writer(old)
    writer.writerow(["Code", "Type", "Classification", "Specialization", "Definition", "Notes"])
    for row in rows[1:]:
        writer.writerow(row[:6])
    path = tmp_path / "taxonomy_old.csv"
    path.write_bytes(old.getvalue().encode("cp1252", errors="replace"))
    call_command("import", "taxonomy", str(path))
    family = Taxonomy.objects.get(code="207Q00000X")
    assert family.grouping == "Allopathic & Osteopathic Physicians"
    assert family.display_name == "Family Medicine Physician"  # kept from the built-in list
    assert Taxonomy.objects.count() >= 860


def test_a_file_with_bad_rows_is_refused_whole_with_line_numbers(db, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(
        "Code,Grouping,Classification,Specialization\n"
        "207Q00000X,Physicians,Family Medicine,\n"
        "NOT-A-CODE,Physicians,Something,\n"
        "208000000X,Physicians,,\n"
        "207Q00000X,Physicians,Family Medicine again,\n"
        "111N00000X,Chiropractic Providers,Chiropractor,\n"
    )
    before = Taxonomy.objects.count()
    with pytest.raises(CommandError) as exc:
        call_command("import", "taxonomy", str(path))
    message = str(exc.value)
    assert "nothing imported" in message
    assert "line 3: 'NOT-A-CODE' is not a taxonomy code" in message
    assert "line 4: code 208000000X has no Classification" in message
    assert "line 5: code 207Q00000X repeats line 2" in message
    assert Taxonomy.objects.count() == before


def test_a_file_that_is_not_a_taxonomy_csv_is_named_as_such(db, tmp_path):
    path = tmp_path / "npi.csv"
    path.write_text('"NPI","Entity Type Code"\n"1234567893","1"\n')
    with pytest.raises(CommandError, match="not a NUCC taxonomy CSV: missing column"):
        call_command("import", "taxonomy", str(path))


def test_a_missing_file_is_a_clear_error(db):
    with pytest.raises(CommandError, match="no such file"):
        call_command("import", "taxonomy", "/nonexistent/taxonomy.csv")
