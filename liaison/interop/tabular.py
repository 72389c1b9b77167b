"""Practice-management exports (CSV or XLSX) turned into referrals, row by row.

`read_table` reads the file; a mapping says which column holds what (`TARGETS`); `RowBuilder`
turns rows into unsaved, validated `Referral`s with the same checks as the intake form
(`referrals.services.validate_new_referral`), resolving referrers, our sites and physicians and
the rows already imported for a whole chunk of rows at once. Row errors name the row and the
field, never the value (they end up in job results).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from liaison.core.phi import normalise, phi_index
from liaison.core.rows import Blueprint, in_list
from liaison.directory.models import Location, Provider
from liaison.interop.incoming import ICD10_RE
from liaison.referrals import services as referrals
from liaison.referrals.models import Channel, Referral, ServiceLine, Status, Urgency
from liaison.referrals.services import ReferrerInfo

MAX_FILE_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    group: str
    aliases: tuple[str, ...] = ()
    help: str = ""


TARGETS = (
    Target(
        "row_id",
        "Referral id",
        "Referral",
        ("referral id", "referral number", "referral no", "ref id", "referral"),
        "the export's own number for the referral: recognises rows already imported",
    ),
    Target("patient_last_name", "Patient last name", "Patient", ("last name", "patient last name", "lname")),
    Target(
        "patient_first_name", "Patient first name", "Patient", ("first name", "patient first name", "fname")
    ),
    Target(
        "patient_name",
        "Patient name (one column)",
        "Patient",
        ("patient name", "patient", "name"),
        "'Last, First' or 'First Last', when the export has no separate columns",
    ),
    Target("patient_dob", "Date of birth", "Patient", ("dob", "date of birth", "birth date", "birthdate")),
    Target(
        "patient_phone", "Patient phone", "Patient", ("phone", "patient phone", "home phone", "cell phone")
    ),
    Target(
        "patient_mrn",
        "MRN",
        "Patient",
        ("mrn", "medical record number", "chart number", "chart", "patient id", "account number"),
    ),
    Target("patient_zip", "Patient ZIP", "Patient", ("zip", "zip code", "postal code", "patient zip")),
    Target(
        "payer", "Payer", "Patient", ("payer", "insurance", "primary insurance", "insurance name", "plan")
    ),
    Target(
        "member_id", "Member id", "Patient", ("member id", "subscriber id", "insurance id", "policy number")
    ),
    Target(
        "referring_npi",
        "Referring NPI",
        "Referrer",
        ("referring npi", "ref npi", "referring provider npi", "npi"),
    ),
    Target(
        "referring_name",
        "Referring provider name",
        "Referrer",
        ("referring provider", "referring physician", "referred by", "referring doctor", "referring name"),
        "'Last, First' or 'First Last'",
    ),
    Target("referring_phone", "Referring office phone", "Referrer", ("referring phone", "office phone")),
    Target("referring_fax", "Referring office fax", "Referrer", ("referring fax", "fax", "office fax")),
    Target("referring_practice", "Referring practice", "Referrer", ("referring practice", "practice")),
    Target(
        "received_date",
        "Received date",
        "Referral",
        ("received", "received date", "date received", "referral date", "date"),
    ),
    Target("reason", "Reason for referral", "Referral", ("reason", "reason for referral", "referral reason")),
    Target(
        "icd10_codes",
        "ICD-10 codes",
        "Referral",
        ("icd10", "icd-10", "icd 10", "diagnosis code", "dx code", "dx"),
    ),
    Target("urgency", "Urgency", "Referral", ("urgency", "priority")),
    Target("status", "Status", "Referral", ("status", "referral status")),
    Target(
        "appointment_date",
        "Appointment date",
        "Referral",
        ("appointment", "appointment date", "appt date", "scheduled date"),
        "needed for scheduled and no-show rows",
    ),
    Target("site", "Our site", "Referral", ("site", "location", "our site")),
    Target(
        "physician", "Our physician (name or NPI)", "Referral", ("physician", "referred to", "our physician")
    ),
    Target("service_line", "Service line", "Referral", ("service line", "service")),
)
TARGET_LABELS = {t.key: t.label for t in TARGETS}
DATE_FORMATS = (
    ("%m/%d/%Y", "MM/DD/YYYY (12/31/1960)"),
    ("%m/%d/%y", "MM/DD/YY (12/31/60)"),
    ("%Y-%m-%d", "YYYY-MM-DD (1960-12-31)"),
    ("%d/%m/%Y", "DD/MM/YYYY (31/12/1960)"),
    ("%m-%d-%Y", "MM-DD-YYYY (12-31-1960)"),
    ("%Y%m%d", "YYYYMMDD (19601231)"),
    ("%d.%m.%Y", "DD.MM.YYYY (31.12.1960)"),
)
TIME_FORMATS = ("%H:%M", "%H:%M:%S", "%I:%M %p", "%I:%M:%S %p", "%I:%M%p")
STATUS_WORDS = {
    **{s.value: s.value for s in Status},
    **{s.label.lower(): s.value for s in Status},
    "new": Status.RECEIVED,
    "pending": Status.RECEIVED,
    "open": Status.RECEIVED,
    "approved": Status.ACCEPTED,
    "denied": Status.DECLINED,
    "rejected": Status.DECLINED,
    "booked": Status.SCHEDULED,
    "appointment scheduled": Status.SCHEDULED,
    "completed": Status.SEEN,
    "visit completed": Status.SEEN,
    "no show": Status.NO_SHOW,
    "noshow": Status.NO_SHOW,
    "canceled": Status.CANCELLED,
    "note sent": Status.NOTE_SENT,
}
URGENCY_WORDS = {
    "": Urgency.ROUTINE,
    "routine": Urgency.ROUTINE,
    "normal": Urgency.ROUTINE,
    "regular": Urgency.ROUTINE,
    "urgent": Urgency.URGENT,
    "asap": Urgency.URGENT,
    "high": Urgency.URGENT,
    "stat": Urgency.STAT,
    "emergent": Urgency.STAT,
    "same day": Urgency.STAT,
}
# Left out of the per-row full_clean(): the related rows and identifiers RowBuilder checks for
# a whole chunk at once, and the fields it sets itself (constants, values from its own tables,
# times it computed, the blind indexes). Every value read from the file is checked per row.
BULK_CHECKED = (
    "referring_provider",
    "referring_location",
    "site",
    "referred_to_physician",
    "service_line",
    "assigned_to",
    "external_id",
    "source_system",
    "channel",
    "urgency",
    "status",
    "referrer_to_match",
    "referrer_as_received",
    "received_at",
    "first_contact_at",
    "appointment_at",
    "seen_at",
    "note_sent_at",
    "closed_at",
    "mrn_key",
)


class FileError(Exception):
    """The file cannot be read as a table (the message names no cell value)."""


# --- reading -----------------------------------------------------------------------------------


def detect_kind(name: str, content: bytes) -> str:
    if content[:4] == b"PK\x03\x04":
        return "xlsx"
    if name.lower().endswith((".xlsx", ".xlsm")):
        raise FileError("The file is named .xlsx but is not an Excel workbook.")
    if name.lower().endswith(".xls"):
        raise FileError("Old Excel files (.xls) cannot be read: save the export as .xlsx or .csv.")
    if b"\x00" in content[:4096]:
        raise FileError("This is not a CSV or Excel (.xlsx) file.")
    return "csv"


def _text(content: bytes) -> str:
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return content.decode("cp1252", errors="replace")  # Excel's "CSV" on Windows


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (dt.datetime, dt.date)):
        return value
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value).strip()


def read_table(content: bytes, kind: str) -> tuple[list[str], Iterator[tuple[int, list[Any]]]]:
    """(headers, rows): each row with its number as a spreadsheet shows it (the header is row 1)."""
    if kind == "xlsx":
        rows = _xlsx_rows(content)
    else:
        text = _text(content)
        first_line = text.split("\n", 1)[0]
        delimiter = max(",;\t|", key=first_line.count)
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        rows = iter(reader)  # lists of str already (stripped when read)
    try:
        raw_headers = next(rows)
    except StopIteration:
        raise FileError("The file is empty.") from None
    except (csv.Error, ValueError):
        raise FileError("The first row cannot be read as a header.") from None
    headers = _headers(raw_headers)
    if not any(raw_headers):
        raise FileError("The first row must name the columns (it is empty).")

    def numbered() -> Iterator[tuple[int, list[Any]]]:
        number = 1
        try:
            for row in rows:
                number += 1
                if any(v not in ("", None) for v in row):
                    yield number, row
        except csv.Error:
            raise FileError(f"Row {number} cannot be read (unbalanced quotes?).") from None

    return headers, numbered()


def _headers(raw: list[Any]) -> list[str]:
    out: list[str] = []
    for i, value in enumerate(raw, start=1):
        name = str(value).strip()[:100] if value not in (None, "") else f"(column {i})"
        base, n = name, 2
        while name in out:
            name, n = f"{base} ({n})", n + 1
        out.append(name)
    return out


def _xlsx_rows(content: bytes) -> Iterator[list[Any]]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, OSError):
        raise FileError("The Excel file cannot be read (is it a valid .xlsx workbook?).") from None
    sheet = book.worksheets[0]

    def rows() -> Iterator[list[Any]]:
        try:
            for row in sheet.iter_rows(values_only=True):
                yield [_cell(v) for v in row]
        finally:
            book.close()

    return rows()


def count_rows(content: bytes, kind: str) -> int:
    """Data rows (blank ones left out). For a workbook, the sheet's own dimension when it has one
    (reading 100k rows of XLSX takes seconds): an upper bound if it ends with blank rows."""
    if kind == "xlsx":
        from openpyxl import load_workbook

        dimension = None
        with contextlib.suppress(Exception):  # unreadable: read_table below says why
            book = load_workbook(io.BytesIO(content), read_only=True)
            dimension = book.worksheets[0].max_row
            book.close()
        if dimension and dimension > 2:
            return dimension - 1
    _, rows = read_table(content, kind)
    return sum(1 for _ in rows)


def suggest_columns(headers: list[str]) -> dict[str, str]:
    """A first mapping from the header names (exact matches of common export headers)."""
    by_name = {normalise(h): h for h in reversed(headers)}
    used: set[str] = set()
    out = {}
    for target in TARGETS:
        for alias in target.aliases:
            header = by_name.get(normalise(alias))
            if header and header not in used:
                out[target.key] = header
                used.add(header)
                break
    return out


def check_columns(columns: dict[str, str], headers: list[str]) -> dict[str, list[str]]:
    """Mapping errors, by target: what must be mapped for a row to be importable and recognisable."""
    errors: dict[str, list[str]] = {}
    mapped = {k for k, v in columns.items() if v}
    for key, header in columns.items():
        if header and header not in headers:
            errors.setdefault(key, []).append("This column is not in the file.")
    if "patient_name" not in mapped and not {"patient_last_name", "patient_first_name"} <= mapped:
        errors.setdefault("patient_last_name", []).append(
            "Map the patient's last and first name columns (or the one-column patient name)."
        )
    if "patient_dob" not in mapped:
        errors.setdefault("patient_dob", []).append("Map the date of birth column.")
    if "row_id" not in mapped and "received_date" not in mapped:
        errors.setdefault("received_date", []).append(
            "Map the received date (or the referral id): without either a second import of the same "
            "file could not recognise the rows already imported."
        )
    if "patient_name" in mapped and {"patient_last_name", "patient_first_name"} & mapped:
        errors.setdefault("patient_name", []).append("Map either the one-column name or the two columns.")
    return errors


# --- values ------------------------------------------------------------------------------------


def split_name(value: str) -> tuple[str, str]:
    """(last, first) from 'Last, First M' or 'First M Last'."""
    value = " ".join(value.split())
    if "," in value:
        last, _, first = value.partition(",")
        return last.strip(), first.strip()
    parts = value.rsplit(" ", 1)
    return (parts[1], parts[0]) if len(parts) == 2 else (value, "")


# The common formats read without strptime (a few times faster; it adds up over 100k rows).
_FAST_DATES = {
    "%m/%d/%Y": (re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})$"), (3, 1, 2)),
    "%Y-%m-%d": (re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})$"), (1, 2, 3)),
    "%d/%m/%Y": (re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})$"), (3, 2, 1)),
    "%m-%d-%Y": (re.compile(r"(\d{1,2})-(\d{1,2})-(\d{4})$"), (3, 1, 2)),
}


def parse_date(value: Any, fmt: str, *, past: bool = False) -> dt.date:
    """A date in the mapping's format (Excel dates are already dates). Raises ValueError."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    head = text.split(" ", 1)[0].split("T", 1)[0]
    fast = _FAST_DATES.get(fmt)
    if fast is not None and (m := fast[0].match(head)):
        y, mo, d = (int(m.group(i)) for i in fast[1])
        return dt.date(y, mo, d)  # ValueError for 13/45/1961, like strptime
    try:
        parsed = dt.datetime.strptime(text, fmt).date()
    except ValueError:
        parsed = dt.datetime.strptime(head, fmt).date()
    if past and "%y" in fmt and parsed > timezone.localdate():
        parsed = parsed.replace(year=parsed.year - 100)  # 01/02/45 is a birth in 1945
    return parsed


def parse_datetime(value: Any, fmt: str) -> dt.datetime:
    tz = ZoneInfo(settings.TIME_ZONE)
    if isinstance(value, dt.datetime):
        return value if timezone.is_aware(value) else value.replace(tzinfo=tz)
    day = parse_date(value, fmt)
    rest = str(value).strip().split(" ", 1)[1].strip() if " " in str(value).strip() else ""
    moment = dt.time(0, 0)
    if rest and not isinstance(value, dt.date):
        for time_format in TIME_FORMATS:
            try:
                moment = dt.datetime.strptime(rest.upper(), time_format).time()
                break
            except ValueError:
                continue
        else:
            raise ValueError("time")
    return dt.datetime.combine(day, moment, tzinfo=tz)


_CODE_SPLIT = re.compile(r"[,;\s]+")


def _text_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def words(value: str) -> str:
    return " ".join(str(value).lower().replace("_", " ").replace("-", " ").split())


# --- rows --------------------------------------------------------------------------------------


@dataclass
class BuiltRow:
    number: int
    referral: Referral | None = None
    errors: list[str] = field(default_factory=list)
    key: str = ""
    outcome: str = "new"  # new, existing (already imported), duplicate (earlier row), error
    imported_status: str = ""
    appointment_at: dt.datetime | None = None  # with an imported status
    # The referral's column values, encrypted and ready to insert, instead of `referral`
    # (parallel.as_values).
    values: list[Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class MappingSpec:
    """What RowBuilder needs of a ColumnMapping (also built from an unsaved form)."""

    columns: dict[str, str]
    dob_format: str
    date_format: str
    source_system: str


@dataclass
class Tables:
    """Our sites, physicians and service lines, by the names a file may use for them."""

    sites: dict[str, Location | None]
    physicians: dict[str, Provider | None]
    service_lines: dict[str, ServiceLine]

    @classmethod
    def load(cls) -> Tables:
        sites: dict[str, Location | None] = {}
        for site in Location.objects.sites().select_related("practice"):
            for name in {normalise(site.name), normalise(str(site)), normalise(site.city)} - {""}:
                sites[name] = None if name in sites else site  # a name two sites share designates neither
        physicians: dict[str, Provider | None] = {}
        for p in Provider.objects.filter(is_ours=True):
            names = {
                p.npi,
                normalise(f"{p.last_name}{p.first_name}"),
                normalise(f"{p.first_name}{p.last_name}"),
            }
            for name in (names | {normalise(p.last_name)}) - {""}:
                physicians[name] = None if name in physicians else p
        service_lines = {normalise(s.name): s for s in ServiceLine.objects.filter(is_active=True)}
        return cls(sites, physicians, service_lines)


class RowBuilder:
    """Rows -> validated, unsaved referrals. `build` is pure computation (it may run in a worker
    process); `providers_for` and `classify` ask the database, for a chunk of rows at once."""

    def __init__(
        self,
        spec: MappingSpec,
        headers: list[str],
        tables: Tables | None = None,
        now: dt.datetime | None = None,
    ) -> None:
        self.spec = spec
        self.headers = headers
        self.index = {
            key: headers.index(header) for key, header in spec.columns.items() if header and header in headers
        }
        self.seen_keys: dict[str, int] = {}
        self.now = now or timezone.now()
        self.today = timezone.localdate(self.now)
        self.tables = tables or Tables.load()
        self.sites, self.physicians = self.tables.sites, self.tables.physicians
        self.service_lines = self.tables.service_lines
        self.blueprint = Blueprint(Referral)
        # Referring providers by NPI, looked up once per import (None: not in the directory);
        # a practice's export names the same few thousand referrers again and again.
        self.referrers: dict[str, tuple[Provider, Location | None] | None] = {}

    def extract(self, row: list[Any]) -> dict[str, Any]:
        """The mapped cells of a row: text stripped, Excel dates and times kept as such."""
        out: dict[str, Any] = {}
        width = len(row)
        for key, i in self.index.items():
            value = row[i] if i < width else ""
            out[key] = value.strip() if isinstance(value, str) else ("" if value is None else value)
        return out

    def build_chunk(self, rows: Iterable[tuple[int, list[Any]]]) -> list[BuiltRow]:
        """Build a chunk of rows; referrers, rows already imported and repeats are found in bulk."""
        to_build, known = self.split_known(list(rows))
        providers = self.providers_for(to_build)
        return self.classify([self.build(number, row, providers) for number, row in to_build], known)

    def split_known(
        self, rows: list[tuple[int, list[Any]]]
    ) -> tuple[list[tuple[int, list[Any]]], list[BuiltRow]]:
        """With a referral id column, the rows already imported need no building (a second
        import of a file is then mostly reading it): (rows to build, rows already imported)."""
        column = self.index.get("row_id")
        if column is None:
            return rows, []
        ids = {number: _text_of(row[column]).strip()[:100] for number, row in rows if column < len(row)}
        existing = self._existing([i for i in ids.values() if i])
        if not existing:
            return rows, []
        known = [
            BuiltRow(number, key=ids[number], outcome="existing")
            for number, _ in rows
            if ids.get(number) in existing
        ]
        return [(n, r) for n, r in rows if ids.get(n) not in existing], known

    def _existing(self, keys: list[str]) -> set[str]:
        """The keys already imported from this source. `NOT (external_id = '')`: the condition
        of the partial unique index, without which SQLite (and PostgreSQL for long lists) does
        not use it and scans the table."""
        if not keys:
            return set()
        qn = connection.ops.quote_name
        condition, params = in_list(qn("external_id"), keys)
        sql = (
            f"SELECT {qn('external_id')} FROM {qn(Referral._meta.db_table)} "  # noqa: S608 (names)
            f"WHERE {qn('source_system')} = %s AND {condition} AND NOT ({qn('external_id')} = '')"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [self.spec.source_system, *params])
            return {row[0] for row in cursor.fetchall()}

    def providers_for(self, rows: list[tuple[int, list[Any]]]) -> dict[str, tuple[Provider, Location | None]]:
        """The directory's providers for the referring NPIs of these rows (and their office when single)."""
        column = self.index.get("referring_npi")
        if column is None:
            return {}
        npis = {str(r[column]).strip() for _, r in rows if column < len(r)} - {""}
        known = self.referrers
        if unknown := npis - known.keys():
            for npi in unknown:
                known[npi] = None  # not in the directory, unless found below
            # exclude(npi=""): the partial unique index's condition, so that it is used.
            for p in Provider.objects.filter(npi__in=unknown).exclude(npi="").prefetch_related("locations"):
                locations = list(p.locations.all())
                known[p.npi] = (p, locations[0] if len(locations) == 1 else None)
        return {npi: found for npi in npis if (found := known[npi]) is not None}

    def referrer_ids(self, rows: list[tuple[int, list[Any]]]) -> dict[str, tuple[int, int | None]]:
        """providers_for as ids, for a worker process (model instances are slow to pickle:
        ~600 providers took 86 ms a chunk, longer than building the rows)."""
        return {
            npi: (provider.pk, location.pk if location is not None else None)
            for npi, (provider, location) in self.providers_for(rows).items()
        }

    def classify(self, built: list[BuiltRow], known: list[BuiltRow] = ()) -> list[BuiltRow]:
        """New, already imported (its key is in the database), repeated in the file, or error;
        `known`: rows already found imported (split_known), merged back in file order."""
        # With a referral id column, split_known already asked which ids are imported; a key
        # imported since then was imported by this import, and seen_keys has it.
        by_id = "row_id" in self.index
        existing = set() if by_id else self._existing([b.key for b in built if b.key and b.ok])
        if known:
            built = sorted([*built, *known], key=lambda b: b.number)
        for b in built:
            if b.outcome == "existing":
                continue
            if not b.ok:
                b.outcome = "error"
            elif b.key in existing:
                b.outcome = "existing"
            elif b.key in self.seen_keys:
                if "row_id" in self.index:
                    b.errors.append(f"Referral id: the same as row {self.seen_keys[b.key]}.")
                    b.outcome = "error"
                    b.referral = b.values = None
                else:
                    b.outcome = "duplicate"
            else:
                self.seen_keys[b.key] = b.number
        return built

    def build(self, number: int, row: list[Any], providers: dict[str, tuple[Any, Any]]) -> BuiltRow:
        out = BuiltRow(number)
        errors = out.errors
        v = self.extract(row)
        text = _text_of

        def fail(key: str, message: str) -> None:
            errors.append(f"{TARGET_LABELS.get(key, key)}: {message}")

        if "patient_name" in v:
            last, first = split_name(text(v["patient_name"]))
        else:
            last, first = text(v.get("patient_last_name", "")), text(v.get("patient_first_name", ""))
        dob = None
        raw_dob = v.get("patient_dob", "")
        if raw_dob != "":
            try:
                dob = parse_date(raw_dob, self.spec.dob_format, past=True)
            except ValueError:
                fail("patient_dob", f"not a date in the format {_format_label(self.spec.dob_format)}.")
        received_at = self.now
        if "received_date" in v:
            if v["received_date"] == "":
                fail("received_date", "missing.")
            else:
                try:
                    received_at = parse_datetime(v["received_date"], self.spec.date_format)
                    if received_at.date() > self.today:
                        fail("received_date", "in the future.")
                except ValueError:
                    fail("received_date", f"not a date in the format {_format_label(self.spec.date_format)}.")
        appointment_at = None
        if v.get("appointment_date", "") != "":
            try:
                appointment_at = parse_datetime(v["appointment_date"], self.spec.date_format)
            except ValueError:
                fail("appointment_date", f"not a date in the format {_format_label(self.spec.date_format)}.")
        urgency = URGENCY_WORDS.get(words(text(v.get("urgency", ""))))
        if urgency is None:
            fail("urgency", "not routine, urgent or stat.")
        status = Status.RECEIVED
        raw_status = words(text(v.get("status", "")))
        if raw_status:
            status = STATUS_WORDS.get(raw_status)
            if status is None:
                fail("status", "not a referral status (received, accepted, scheduled, seen ...).")
            elif status in (Status.SCHEDULED, Status.NO_SHOW) and appointment_at is None:
                fail("appointment_date", "a scheduled or no-show referral needs its appointment date.")
        codes = [c for c in _CODE_SPLIT.split(text(v.get("icd10_codes", "")).upper()) if c]
        if any(not ICD10_RE.match(c) for c in codes):
            fail("icd10_codes", "a code is not an ICD-10 code (e.g. M17.11).")
        codes = [f"{c[:3]}.{c[3:]}" if len(c) > 3 and "." not in c else c for c in codes]
        site = self._lookup(v, "site", self.sites, "not one of our sites", fail)
        physician = self._lookup(v, "physician", self.physicians, "not one of our physicians", fail)
        service_line = self._lookup(v, "service_line", self.service_lines, "not a service line", fail)

        npi = text(v.get("referring_npi", ""))
        ref_last, ref_first = split_name(text(v["referring_name"])) if v.get("referring_name") else ("", "")
        info = ReferrerInfo(
            npi=npi,
            first_name=ref_first[:80],
            last_name=ref_last[:80],
            phone=text(v.get("referring_phone", ""))[:30],
            fax=text(v.get("referring_fax", ""))[:30],
            practice=text(v.get("referring_practice", ""))[:200],
        )
        # The referring provider and its single office: instances (providers_for) or ids (referrer_ids).
        provider, location = providers.get(npi, (None, None))
        if isinstance(provider, int):
            provider_id, location_id, provider, location = provider, location, None, None
        else:
            provider_id = provider.pk if provider is not None else None
            location_id = location.pk if location is not None else None
        referral = self.blueprint.new(
            {
                "patient_first_name": first[:100],
                "patient_last_name": last[:100],
                "patient_dob": dob,
                "patient_phone": text(v.get("patient_phone", "")),
                "patient_mrn": text(v.get("patient_mrn", ""))[:100],
                "patient_zip": text(v.get("patient_zip", ""))[:10],
                "member_id": text(v.get("member_id", ""))[:100],
                "payer": text(v.get("payer", ""))[:100],
                "reason": text(v.get("reason", ""))[:2000],
                "icd10_codes": ", ".join(dict.fromkeys(codes)),
                "urgency": urgency or Urgency.ROUTINE,
                "channel": Channel.IMPORT,
                "referring_provider_id": provider_id,
                "referring_location_id": location_id,
                "referrer_to_match": provider_id is None,
                "referrer_as_received": info.as_dict(),
                "received_at": received_at,
                "source_system": self.spec.source_system,
            },
            referring_provider=provider,
            referring_location=location,
            site=site,
            referred_to_physician=physician,
            service_line=service_line,
        )
        try:
            referrals.validate_new_referral(referral, exclude=BULK_CHECKED, unique=False, today=self.today)
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                if name == "patient_dob" and dob is None and raw_dob != "":
                    continue  # already said: not a date in the format
                errors.append(f"{_field_label(name)}: {' '.join(messages)}")
        if "row_id" in v:
            row_id = text(v["row_id"])
            if not row_id:
                fail("row_id", "missing.")
            out.key = row_id[:100]
        elif not errors:
            referrer_key = npi or normalise(f"{info.last_name}{info.first_name}")
            out.key = "auto:" + phi_index(last, first, dob, referrer_key, received_at.date())
        if errors:
            return out
        referral.external_id = out.key
        if status != Status.RECEIVED:
            _apply_imported_status(referral, status, appointment_at, self.now)
            out.imported_status, out.appointment_at = status, appointment_at
        elif appointment_at is not None:
            referral.appointment_at = appointment_at
        out.referral = referral
        return out

    def _lookup(self, v: dict[str, Any], key: str, table: dict[str, Any], message: str, fail: Any) -> Any:
        text = _text_of(v.get(key, ""))
        if not text:
            return None
        found = table.get(text) or table.get(normalise(text))
        if found is None:
            fail(key, f"{message}." if normalise(text) not in table else f"{message} (ambiguous).")
        return found


def _apply_imported_status(
    referral: Referral, status: str, appointment_at: dt.datetime | None, now: dt.datetime
) -> None:
    """The export's status, with the milestone times it implies; the times the file does not give
    are the import's, as for a status changed by hand (see docs/interop.md)."""
    referral.status = status
    referral.appointment_at = appointment_at
    if status in (Status.SCHEDULED, Status.NO_SHOW, Status.SEEN, Status.NOTE_SENT, Status.CLOSED):
        referral.first_contact_at = now
    if status in (Status.SEEN, Status.NOTE_SENT, Status.CLOSED):
        referral.seen_at = appointment_at if appointment_at and appointment_at <= now else now
    if status in (Status.NOTE_SENT, Status.CLOSED):
        referral.note_sent_at = now
    if status == Status.CLOSED:
        referral.closed_at = now


def _field_label(name: str) -> str:
    if name in TARGET_LABELS:
        return TARGET_LABELS[name]
    try:
        return str(Referral._meta.get_field(name).verbose_name).capitalize()
    except Exception:
        return "Row"


def _format_label(fmt: str) -> str:
    return dict(DATE_FORMATS).get(fmt, fmt).split(" (")[0]


def preview_rows(rows: list[BuiltRow]) -> list[dict[str, Any]]:
    """The first rows as they will be imported (patient data: for the preview page only)."""
    out = []
    for b in rows:
        r = b.referral
        out.append(
            {
                "number": b.number,
                "outcome": b.outcome,
                "errors": b.errors,
                "patient": f"{r.patient_last_name}, {r.patient_first_name}" if r else "",
                "dob": r.patient_dob if r else None,
                "mrn": r.patient_mrn if r else "",
                "referrer": (
                    r.referring_provider.display_name
                    if r and r.referring_provider
                    else " ".join(
                        filter(
                            None,
                            [
                                r.referrer_as_received.get("first_name"),
                                r.referrer_as_received.get("last_name"),
                            ],
                        )
                    )
                    if r
                    else ""
                ),
                "referrer_to_match": bool(r and r.referrer_to_match),
                "received": r.received_at if r else None,
                "reason": r.reason if r else "",
                "payer": r.payer if r else "",
                "status": Status(r.status).label if r else "",
                "urgency": r.get_urgency_display() if r else "",
            }
        )
    return out
