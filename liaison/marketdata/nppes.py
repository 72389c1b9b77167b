"""`liaison import nppes FILE`: the NPPES file (monthly full, weekly update, or the deactivation
report) into the directory.

- Individuals (entity type 1) become providers, organisations (type 2) practices; the practice
  location address becomes an office with its ZIP centroid. Individuals at one address share an
  office: one entered by hand first, else the NPPES organisation's, else a practice named after the
  address (`directory_sync`).
- Filters (`--states`, `--near-site/--radius`, `--taxonomy`, `--entity`) are applied while the
  10 GB file is read (by Polars, or DuckDB after a malformed row: `polars_plan` and `prepare`);
  rows of NPIs already in the directory are always read, so that a known provider who moved away
  or was deactivated is seen.
- Each import lists its directory changes: new providers, moves, deactivations, reactivations.
"""

from __future__ import annotations

import csv
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import polars as pl
from django.conf import settings
from django.db.models import Q

from liaison.core.geo import zips_near
from liaison.directory.models import US_STATES, Location, Practice, Provider, Source, Taxonomy
from liaison.directory.validators import TAXONOMY_RE
from liaison.marketdata.directory_sync import DirectorySync, deactivation_row
from liaison.marketdata.models import ImportKind, NppesRecord
from liaison.marketdata.nppes_columns import REQUIRED, SEX_COLUMNS, TAXONOMY_SLOTS, WANTED
from liaison.marketdata.nppes_rows import Row, RowProblem, npi_problem, parse_date, parse_row, row_hash
from liaison.marketdata.runs import FileImport
from liaison.marketdata.scan import (
    CsvScan,
    ImportFileError,
    PolarsPlan,
    SourceFile,
    first_lines,
    sql_ident,
    trimmed,
)

DEACTIVATION_DATE_COLUMNS = ("NPPES Deactivation Date", "NPI Deactivation Date", "Deactivation Date")


def resolve_taxonomy_filter(items: Iterable[str]) -> tuple[list[str], list[str]]:
    """Codes (207X00000X), prefixes (207X or 207X*) or names ('orthopaedic': every code whose
    classification, specialization, grouping or display name contains it) -> (codes, prefixes)."""
    codes: list[str] = []
    prefixes: list[str] = []
    for item in items:
        term = item.strip()
        if not term:
            continue
        upper = term.upper().rstrip("*")
        if TAXONOMY_RE.match(upper):
            codes.append(upper)
        elif re.fullmatch(r"[0-9][0-9A-Z]{0,8}", upper):
            prefixes.append(upper)
        else:
            found = list(
                Taxonomy.objects.filter(
                    Q(classification__icontains=term)
                    | Q(specialization__icontains=term)
                    | Q(grouping__icontains=term)
                    | Q(display_name__icontains=term)
                ).values_list("code", flat=True)
            )
            if not found:
                raise ImportFileError(
                    f"no taxonomy code matches '{term}': give NUCC codes (207X00000X), a prefix (207X) or a "
                    "specialty name (`liaison import taxonomy` loads the full NUCC list)"
                )
            codes += found
    return sorted(set(codes)), sorted(set(prefixes))


def describe_wrong_kind(path: Path, expected: str, header: Sequence[str]) -> str:
    """'not an NPPES file', with what it looks like instead when we can tell."""
    from liaison.marketdata.detect import sniff

    found = sniff(path)
    shown = ", ".join(h[:40] for h in header[:5]) if header else "nothing readable as CSV"
    hint = f"; it looks like {found.description}: use `liaison import {found.command} FILE`" if found else ""
    return f"not {expected} (its first line reads: {shown}){hint}"


class NppesImport(FileImport):
    """The NPPES data file: monthly full replacement or weekly update, V1 or V2 header, CSV or zip."""

    kind = ImportKind.NPPES

    def __init__(
        self,
        path: Path | str,
        *,
        states: Sequence[str] = (),
        near_sites: Sequence[Location] = (),
        radius_miles: float | None = None,
        taxonomy: Sequence[str] = (),
        entity: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(path, **kwargs)
        self.states = sorted({s.strip().upper() for s in states if s.strip()})
        if bad := [s for s in self.states if s not in US_STATES]:
            raise ImportFileError(f"unknown state code(s): {', '.join(bad)}")
        self.near_sites = sorted(near_sites, key=lambda s: s.pk)
        self.radius_miles = radius_miles
        if radius_miles is not None and not self.near_sites:
            raise ImportFileError("--radius needs our sites: add one in the directory first")
        if self.near_sites and not radius_miles:
            raise ImportFileError("--near-site needs --radius MILES")
        self.taxonomy_terms = [t.strip() for t in taxonomy if t.strip()]
        self.taxonomy_codes, self.taxonomy_prefixes = resolve_taxonomy_filter(self.taxonomy_terms)
        entity = {"organization": "organisation"}.get(entity, entity)
        if entity not in ("", "individual", "organisation"):
            raise ImportFileError("--entity is 'individual' or 'organisation'")
        self.entity = entity

    def choose_member(self, infos: list) -> Any:
        def is_data(name: str) -> bool:
            return name.lower().endswith(".csv") and "fileheader" not in name.lower()

        main = [i for i in infos if is_data(i.filename) and re.search(r"npidata_pfile", i.filename, re.I)]
        return max(main or [i for i in infos if is_data(i.filename)], key=lambda i: i.file_size, default=None)

    def filters(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.states:
            out["states"] = self.states
        if self.near_sites:
            out["near_sites"] = [s.pk for s in self.near_sites]
            out["radius_miles"] = self.radius_miles
        if self.taxonomy_terms:
            out["taxonomy"] = self.taxonomy_terms
        if self.entity:
            out["entity"] = self.entity
        return out

    def detect(self, src: SourceFile) -> None:
        lines = first_lines(src.path, 1)
        header = lines[0] if lines else []
        if any(c in header for c in DEACTIVATION_DATE_COLUMNS) and "Entity Type Code" not in header:
            raise ImportFileError(
                f"{src.label}: this is an NPPES deactivation report: `liaison import nppes` reads it, "
                "give it as it is (xlsx or csv)"
            )
        if [c for c in REQUIRED if c not in header] or not any(c in header for c in SEX_COLUMNS):
            raise ImportFileError(
                f"{src.label}: {describe_wrong_kind(src.path, 'an NPPES data file', header)}"
            )
        self.columns = header
        self.file_format = (
            f"NPPES {'V2' if 'Provider Sex Code' in header else 'V1'} header ({len(header)} columns)"
        )

    def _selected(self) -> list[str]:
        sex = next(c for c in SEX_COLUMNS if c in self.columns)
        return [
            *[WANTED[k] for k in list(WANTED)[:23]],
            sex,
            *[f"Healthcare Provider Taxonomy Code_{i}" for i in range(1, TAXONOMY_SLOTS + 1)],
            *[f"Healthcare Provider Primary Taxonomy Switch_{i}" for i in range(1, TAXONOMY_SLOTS + 1)],
        ]

    @cached_property
    def _zips(self) -> list[str]:
        """ZIP codes within the radius of the sites (worked out once, for either reader)."""
        points = [(s.latitude, s.longitude) for s in self.near_sites if s.latitude is not None]
        return zips_near(points, float(self.radius_miles or 0))

    @property
    def _filtered(self) -> bool:
        return bool(
            self.states or self.near_sites or self.taxonomy_codes or self.taxonomy_prefixes or self.entity
        )

    def prepare(self, scan: CsvScan) -> tuple[str, str, str]:
        """The filter in DuckDB's SQL; `polars_plan` says the same in Polars."""
        select = ", ".join(sql_ident(n) if n in self.columns else "NULL" for n in self._selected())
        if not self._filtered:
            return select, "true", "NPI"
        conditions = []
        if self.states:
            scan.table("f_states", self.states)
            conditions.append(f"upper(trim({sql_ident(WANTED['state'])})) IN (SELECT v FROM f_states)")  # noqa: S608 (identifiers quoted; values go through tables)
        if self.near_sites:
            scan.table("f_zips", self._zips)
            conditions.append(
                f"substr(trim({sql_ident(WANTED['zip_code'])}), 1, 5) IN (SELECT v FROM f_zips)"  # noqa: S608 (identifiers quoted; values go through tables)
            )
        if self.taxonomy_codes or self.taxonomy_prefixes:
            scan.table("f_codes", self.taxonomy_codes)
            slots = [sql_ident(slot) for slot in self._taxonomy_slots()]
            tests = [f"{c} IN (SELECT v FROM f_codes)" for c in slots] if self.taxonomy_codes else []  # noqa: S608 (identifiers quoted; values go through tables)
            for prefix in self.taxonomy_prefixes:
                tests += [f"starts_with(coalesce({c}, ''), '{prefix}')" for c in slots]
            conditions.append("(" + " OR ".join(tests) + ")")
        if self.entity:
            conditions.append(f"{sql_ident(WANTED['entity_type'])} = '{self._entity_code()}'")
        scan.table("f_known", self._known_npis())
        keep = "(" + " AND ".join(conditions) + ') OR trim("NPI") IN (SELECT v FROM f_known)'  # noqa: S608 (identifiers quoted; values go through tables)
        return select, keep, "NPI"

    def polars_plan(self) -> PolarsPlan:
        select = [
            (pl.col(n) if n in self.columns else pl.lit(None, pl.String)).alias(f"s{i}")
            for i, n in enumerate(self._selected())
        ]
        if not self._filtered:
            return PolarsPlan(select, pl.lit(True))

        conditions = []
        if self.states:
            conditions.append(trimmed(WANTED["state"]).str.to_uppercase().is_in(self.states))
        if self.near_sites:
            conditions.append(trimmed(WANTED["zip_code"]).str.slice(0, 5).is_in(self._zips))
        if self.taxonomy_codes or self.taxonomy_prefixes:
            tests = []
            for slot in self._taxonomy_slots():
                if self.taxonomy_codes:
                    tests.append(pl.col(slot).is_in(self.taxonomy_codes))
                tests += [pl.col(slot).fill_null("").str.starts_with(p) for p in self.taxonomy_prefixes]
            conditions.append(pl.any_horizontal(tests))
        if self.entity:
            conditions.append(pl.col(WANTED["entity_type"]) == self._entity_code())
        keep = pl.all_horizontal(conditions) | trimmed("NPI").is_in(self._known_npis())
        return PolarsPlan(select, keep)

    def _taxonomy_slots(self) -> list[str]:
        return [f"Healthcare Provider Taxonomy Code_{i}" for i in range(1, TAXONOMY_SLOTS + 1)]

    def _entity_code(self) -> str:
        return "1" if self.entity == "individual" else "2"

    def _known_npis(self) -> list[str]:
        """NPIs in the directory when this import started: their rows are read whatever the filters.

        What this run itself added is left out, so that a resumed run keeps the rows the first try kept.
        """
        created_here = set(
            NppesRecord.objects.filter(first_run=self.run)
            .filter(Q(provider__source=Source.NPPES) | Q(practice__source=Source.NPPES))
            .values_list("npi", flat=True)
        )
        known = set(Provider.objects.exclude(npi="").values_list("npi", flat=True))
        known |= set(Practice.objects.exclude(organization_npi="").values_list("organization_npi", flat=True))
        known |= set(NppesRecord.objects.exclude(first_run=self.run).values_list("npi", flat=True))
        return sorted(known - created_here)

    def row_key(self, row: tuple) -> str:
        return str(row[0] or "").strip()

    def begin(self) -> None:
        self.sync = DirectorySync(self.run, self.reject, self.warn)

    def write_batch(self, rows: list[tuple]) -> None:
        raw = [Row.from_db(values) for values in rows]
        # Most rows of a monthly refresh are what NPPES said last time: compare hashes first.
        known = {
            npi: (digest, last_run)
            for npi, digest, last_run in NppesRecord.objects.filter(
                npi__in=[r.npi.strip() for r in raw]
            ).values_list("npi", "row_hash", "last_run_id")
        }
        parsed, touched = [], []
        for row in raw:
            npi = row.npi.strip()
            seen = known.get(npi)
            if seen is not None and seen[0] == row_hash(row):
                if seen[1] != self.run.pk:  # else: done by this run before it was interrupted
                    self.run.unchanged += 1
                    touched.append(npi)
                continue
            try:
                parsed.append(parse_row(row))
            except RowProblem as problem:
                self.reject(npi, f"NPI {npi[:20] or '(blank)'}: {problem}")
        if touched:
            NppesRecord.objects.filter(npi__in=touched).update(last_run=self.run)
        self.sync.write(parsed)

    def complete(self) -> None:
        self.sync.complete()

    def after(self) -> None:
        if not self.already_done and (self.run.inserted or self.run.updated):
            from liaison.marketdata.scoring import rescore

            rescore(actor=self.actor)


class DeactivationImport(FileImport):
    """The 'NPPES Deactivated NPI Report' (an xlsx with a title row above the header, or a CSV):
    the known NPIs in it are marked deactivated, their history kept."""

    kind = ImportKind.DEACTIVATIONS
    member_suffixes = (".xlsx", ".csv")

    def __init__(self, path: Path | str, **kwargs: Any) -> None:
        for unused in ("states", "near_sites", "radius_miles", "taxonomy", "entity"):
            kwargs.pop(unused, None)
        super().__init__(path, **kwargs)
        self._tmp: Path | None = None

    def detect(self, src: SourceFile) -> None:
        if src.path.suffix.lower() == ".xlsx":
            self._tmp = Path(tempfile.mkdtemp(prefix="deactivations-", dir=_tmp_root()))
            csv_path = _xlsx_to_csv(src.path, self._tmp / (src.path.stem + ".csv"), src.label)
            self.src = SourceFile(given=src.given, path=csv_path, label=src.label, member=src.member)
        lines = first_lines(self.src.path, 1)
        header = lines[0] if lines else []
        if "NPI" not in header or not any(h in header for h in DEACTIVATION_DATE_COLUMNS):
            raise ImportFileError(
                f"{src.label}: {describe_wrong_kind(self.src.path, 'an NPPES deactivation report', header)}"
            )
        self.columns = header
        self.date_column = next(h for h in DEACTIVATION_DATE_COLUMNS if h in header)
        self.file_format = "NPPES deactivated NPI report"

    def prepare(self, scan: CsvScan) -> tuple[str, str, str]:
        known = set(Provider.objects.exclude(npi="").values_list("npi", flat=True))
        known |= set(Practice.objects.exclude(organization_npi="").values_list("organization_npi", flat=True))
        scan.table("f_known", sorted(known))
        return (
            f'trim("NPI"), trim({sql_ident(self.date_column)})',
            'trim("NPI") IN (SELECT v FROM f_known)',
            "NPI",
        )

    def begin(self) -> None:
        self.sync = DirectorySync(self.run, self.reject, self.warn)

    def write_batch(self, rows: list[tuple]) -> None:
        npis = [str(npi) for npi, _ in rows]
        records = NppesRecord.objects.in_bulk(npis)
        parsed = []
        for npi, raw in rows:
            if problem := npi_problem(npi):
                self.reject(npi, problem)
                continue
            when = parse_date(raw or "")
            if when is None:
                self.reject(npi, f"NPI {npi}: '{(raw or '')[:20]}' is not a deactivation date (MM/DD/YYYY)")
                continue
            record = records.get(npi)
            if record is not None and record.deactivated_on == when and not record.reactivated_on:
                self.run.unchanged += 1
                continue
            parsed.append(deactivation_row(npi, when, record))
        self.sync.write(parsed)

    def complete(self) -> None:
        self.sync.complete()

    def cleanup(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def after(self) -> None:
        if not self.already_done and (self.run.inserted or self.run.updated):
            from liaison.marketdata.scoring import rescore

            rescore(actor=self.actor)


def _tmp_root() -> Path:
    root = Path(settings.MARKETDATA_TMP_DIR)
    root.mkdir(parents=True, exist_ok=True)
    return root


def _xlsx_to_csv(path: Path, out: Path, label: str) -> Path:
    """Stream the report's first sheet into a CSV from its header row on (openpyxl's read-only
    mode keeps memory flat)."""
    from openpyxl import load_workbook

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many exception types for a damaged workbook
        raise ImportFileError(f"{label}: not a readable Excel workbook ({type(exc).__name__})") from exc
    try:
        with open(out, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            header_seen = False
            for row in book.worksheets[0].iter_rows(values_only=True):
                cells = [_cell(v) for v in row]
                if not header_seen:
                    if "NPI" in cells:
                        header_seen = True
                        writer.writerow(cells)
                elif any(cells):
                    writer.writerow(cells)
    finally:
        book.close()
    return out


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.strftime("%m/%d/%Y")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def importer_for(path: Path | str) -> type[FileImport]:
    """The data file or the deactivation report, told apart by content."""
    from liaison.marketdata.detect import sniff

    found = sniff(Path(path))
    if found is not None and found.kind == ImportKind.DEACTIVATIONS:
        return DeactivationImport
    return NppesImport
