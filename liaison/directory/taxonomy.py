"""NUCC Health Care Provider Taxonomy: the built-in common list and `liaison import taxonomy FILE`.

Reads both header generations: current (`Code,Grouping,Classification,Specialization,Definition,
Notes,Display Name,Section`) and older (`Type` instead of `Grouping`, no `Display Name`/`Section`).
A file with any bad row writes nothing: every problem is reported with its line number.
"""

from __future__ import annotations

import csv
import io
import urllib.request
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from django.db import transaction

from liaison.audit.services import record
from liaison.core.jobs import Progress
from liaison.directory.models import Taxonomy
from liaison.directory.validators import TAXONOMY_RE

BUILTIN = Path(__file__).parent / "data" / "common_taxonomies.csv"
NUCC_URL = "https://www.nucc.org/images/stories/CSV/nucc_taxonomy_{version}.csv"
COLUMN_ALIASES = {
    "code": ("Code",),
    "grouping": ("Grouping", "Type"),
    "classification": ("Classification",),
    "specialization": ("Specialization",),
    "definition": ("Definition",),
    "display_name": ("Display Name",),
    "section": ("Section",),
}
REQUIRED = ("code", "grouping", "classification")
FIELDS = ("grouping", "classification", "specialization", "definition", "display_name", "section")


class TaxonomyFileError(Exception):
    """The file cannot be imported; the message lists every problem found."""


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rows: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.rows} codes read: {self.created} new, {self.updated} updated, {self.unchanged} unchanged"
        )


def decode(raw: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def parse(text: str) -> tuple[list[dict[str, str]], list[str]]:
    """Rows as {field: value} keyed by our names, and the problems found (with line numbers)."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return [], ["the file is empty"]
    columns: dict[str, int] = {}
    for name, aliases in COLUMN_ALIASES.items():
        for alias in aliases:
            if alias in header:
                columns[name] = header.index(alias)
                break
    missing = [COLUMN_ALIASES[n][0] for n in REQUIRED if n not in columns]
    if missing:
        return [], [
            f"line 1: not a NUCC taxonomy CSV: missing column(s) {', '.join(missing)} (found: {', '.join(header[:8])})"
        ]
    rows, errors, seen = [], [], {}
    for line_no, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        if len(values) < len(header):
            values = values + [""] * (len(header) - len(values))
        row = {name: values[idx].strip() for name, idx in columns.items()}
        code = row["code"].upper()
        if not TAXONOMY_RE.match(code):
            errors.append(
                f"line {line_no}: '{row['code'][:20]}' is not a taxonomy code (10 characters ending in X)"
            )
            continue
        if not row["classification"]:
            errors.append(f"line {line_no}: code {code} has no Classification")
            continue
        if code in seen:
            errors.append(f"line {line_no}: code {code} repeats line {seen[code]}")
            continue
        seen[code] = line_no
        row["code"] = code
        rows.append(row)
    return rows, errors


def import_rows(
    rows: list[dict[str, str]], *, actor: Any, source: str, progress: Progress | None = None
) -> ImportResult:
    """Upsert codes (idempotent: a second run changes nothing) in one transaction."""
    progress = progress or Progress()
    result = ImportResult(rows=len(rows))
    progress.start(len(rows), "taxonomy codes")
    with transaction.atomic():
        existing = Taxonomy.objects.in_bulk([r["code"] for r in rows])
        to_create, to_update = [], []
        for row in rows:
            values = {f: row.get(f, "") for f in FIELDS}
            current = existing.get(row["code"])
            if current is None:
                to_create.append(Taxonomy(code=row["code"], **values))
            else:
                # A file without display names (older header) keeps the names we already have.
                changed = {
                    f: v
                    for f, v in values.items()
                    if (v or f not in ("display_name", "section")) and getattr(current, f) != v
                }
                if changed:
                    for f, v in changed.items():
                        setattr(current, f, v)
                    to_update.append(current)
                else:
                    result.unchanged += 1
            progress.advance()
        Taxonomy.objects.bulk_create(to_create, batch_size=500)
        Taxonomy.objects.bulk_update(to_update, FIELDS, batch_size=500)
        result.created, result.updated = len(to_create), len(to_update)
        if to_create or to_update:
            record(
                actor,
                "import",
                object_type="directory.taxonomy",
                object_repr=source[:200],
                changes={"created": result.created, "updated": result.updated, "unchanged": result.unchanged},
            )
    progress.finish(result.summary())
    return result


def import_file(path: Path, *, actor: Any, progress: Progress | None = None) -> ImportResult:
    rows, errors = parse(decode(path.read_bytes()))
    if errors:
        raise TaxonomyFileError(
            "\n".join(errors[:50]) + (f"\n... and {len(errors) - 50} more" if len(errors) > 50 else "")
        )
    if not rows:
        raise TaxonomyFileError("the file has no taxonomy rows")
    return import_rows(rows, actor=actor, source=path.name, progress=progress)


def load_builtin(actor: Any = "built-in taxonomy") -> ImportResult:
    rows, errors = parse(BUILTIN.read_text(encoding="utf-8"))
    assert not errors, errors
    return import_rows(rows, actor=actor, source="built-in common specialties")


def download_current(dest_dir: Path, today: date | None = None, timeout: float = 60) -> Path:
    """Fetch the newest NUCC CSV (versions are YY.0 in January and YY.1 in July)."""
    today = today or date.today()
    candidates = []
    for year in (today.year % 100, today.year % 100 - 1):
        candidates += [f"{year}1", f"{year}0"]
    last_error: Exception | None = None
    for version in candidates:
        url = NUCC_URL.format(version=version)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (fixed https URL)
                data = response.read()
        except OSError as exc:
            last_error = exc
            continue
        if b"Classification" in data[:500]:
            dest = dest_dir / f"nucc_taxonomy_{version}.csv"
            dest.write_bytes(data)
            return dest
    raise TaxonomyFileError(f"could not download the NUCC taxonomy from nucc.org ({last_error})")
