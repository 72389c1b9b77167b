"""`liaison import shared-patients FILE`: who sees the same Medicare patients as whom.

Two formats, told apart by their first line:
- CMS Physician Shared Patient Patterns: no header, `npi1,npi2,pair_count,bene_count,same_day_count`,
  one file per window (30, 60, 90 or 180 days between the two providers' encounters; from the file
  name, e.g. `physician-shared-patient-patterns-2015-days30.txt`, or `--window`).
- CareSet Hop Teaming: header `from_npi,to_npi,patient_count,transaction_count,average_day_wait,
  std_day_wait`.

Tens of millions of pairs: only those touching our physicians or a provider near our sites (which
includes our competitors) are kept, so import NPPES for the area first.
"""

from __future__ import annotations

import math
import re
from functools import cached_property
from pathlib import Path
from typing import Any

import polars as pl
from django.utils import timezone

from liaison.marketdata.models import ImportKind, SharedPatientDataset, SharedPatientPair
from liaison.marketdata.nppes import describe_wrong_kind
from liaison.marketdata.nppes_rows import npi_problem
from liaison.marketdata.runs import FileImport, upsert_rows
from liaison.marketdata.scan import (
    CsvScan,
    ImportFileError,
    PolarsPlan,
    SourceFile,
    first_lines,
    npi_ok,
    trimmed,
    year_from_name,
)
from liaison.marketdata.scoring import interesting_npis

COUNT_LABELS = [
    "patient count",
    "pair/transaction count",
    "same-day count",
    "average day wait",
    "day wait deviation",
]
VALUE_FIELDS = ["patients", "transactions", "same_day", "average_day_wait", "std_day_wait"]
CMS_COLUMNS = ["npi1", "npi2", "pair_count", "bene_count", "same_day_count"]
CARESET_COLUMNS = [
    "from_npi",
    "to_npi",
    "patient_count",
    "transaction_count",
    "average_day_wait",
    "std_day_wait",
]
WINDOWS = (30, 60, 90, 180)
_WINDOW_RES = [re.compile(r"(?i)days?[-_ ]?(\d{2,3})(?!\d)"), re.compile(r"(?i)(?<!\d)(\d{2,3})[-_ ]?days?")]


def window_from_name(name: str) -> int | None:
    """'...-2015-days30.txt' or '..._30day_...' -> 30."""
    for pattern in _WINDOW_RES:
        for m in pattern.finditer(name):
            if int(m.group(1)) in WINDOWS:
                return int(m.group(1))
    return None


class SharedPatientsImport(FileImport):
    kind = ImportKind.SHARED_PATIENTS
    member_suffixes = (".csv", ".txt")
    locate_fields = 2
    default_batch_size = 20000  # small rows: fewer, larger transactions

    def __init__(
        self, path: Path | str, *, window: int | None = None, year: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(path, **kwargs)
        if window is not None and window not in WINDOWS:
            raise ImportFileError(f"--window is one of {', '.join(map(str, WINDOWS))} (days)")
        self.window = window
        self.year = year

    def detect(self, src: SourceFile) -> None:
        lines = first_lines(src.path, 1)
        first = lines[0] if lines else []
        lowered = [c.strip().lower() for c in first]
        names = f"{src.given.name} {src.member}"
        self.year = self.year or year_from_name(names)
        if lowered[:2] == ["from_npi", "to_npi"]:
            self.source = SharedPatientDataset.Source.CARESET
            self.columns = CARESET_COLUMNS + [f"extra_{i}" for i in range(len(first) - len(CARESET_COLUMNS))]
            self.has_header = True
            self.window = None
            self.file_format = "CareSet Hop Teaming"
        elif len(first) == 5 and all(c.strip().replace(".", "", 1).isdigit() for c in first):
            self.source = SharedPatientDataset.Source.CMS
            self.columns = CMS_COLUMNS
            self.has_header = False
            self.window = self.window or window_from_name(names)
            if self.window is None:
                raise ImportFileError(
                    f"{src.label}: cannot tell the day window from the file name: give --window "
                    f"({', '.join(map(str, WINDOWS))})"
                )
            self.file_format = f"CMS shared patient patterns, {self.window}-day window"
        else:
            raise ImportFileError(
                f"{src.label}: {describe_wrong_kind(src.path, 'a shared-patient file', first)}"
            )
        self.types = {c: "VARCHAR" for c in self.columns}

    def filters(self) -> dict[str, Any]:
        return {"window": self.window, "year": self.year}

    @property
    def dataset_key(self) -> str:
        parts = [self.source, str(self.year or "unknown")]
        if self.window:
            parts.append(f"{self.window}d")
        return "-".join(parts)

    def prepare(self, scan: CsvScan) -> tuple[str, str, str]:
        scan.table("f_npis", sorted(self._interesting))
        a, b = self.columns[0], self.columns[1]
        columns = self._count_columns()
        # Each count as a number (cast by DuckDB), and its text when it is not one, to be named.
        numbers = [f"try_cast(trim({c}) AS DOUBLE)" if c else "NULL::DOUBLE" for c in columns]
        texts = [
            f"CASE WHEN {n} IS NULL THEN trim({c}) END" if c else "NULL"
            for c, n in zip(columns, numbers, strict=True)
        ]
        # The three counts rounded as Python rounds (half to even), and whether the row passes every
        # check of `write_batch` (most do): then it is written as it comes, without those checks.
        rounded = [f"try_cast(round_even({n}, 0) AS BIGINT)" for n in numbers[:3]]
        good = " AND ".join(
            [
                f"npi_ok(trim({a})) AND npi_ok(trim({b}))",
                f"{rounded[0]} IS NOT NULL",
                *(
                    f"({n} IS NULL OR ({r} IS NOT NULL AND {n} >= 0))"
                    for n, r in zip(numbers[:3], rounded, strict=True)
                ),
                *(f"({n} IS NULL OR isfinite({n}))" for n in numbers[3:]),
                *(f"coalesce({t}, '') = ''" for t in texts),
            ]
        )
        select = ", ".join(
            [
                f"trim({a}), trim({b})",
                f"coalesce({good}, false)",
                *rounded,
                *numbers[3:],
                *(f"{n}, {t}" for n, t in zip(numbers, texts, strict=True)),
            ]
        )
        keep = f"trim({a}) IN (SELECT v FROM f_npis) OR trim({b}) IN (SELECT v FROM f_npis)"  # noqa: S608 (identifiers quoted; values go through tables)
        return select, keep, a

    def polars_plan(self) -> PolarsPlan:
        """What `prepare` selects, in Polars."""
        npis = sorted(self._interesting)
        raw_a, raw_b = pl.col(self.columns[0]), pl.col(self.columns[1])
        a, b = trimmed(self.columns[0]), trimmed(self.columns[1])
        columns = self._count_columns()
        # The counts are read as numbers: a count that is not one stops this reader (see PolarsPlan),
        # so there is no text to name (the column stays, for the rows to look like DuckDB's).
        numbers = [pl.col(c) if c else pl.lit(None, pl.Float64) for c in columns]
        texts = [pl.lit(None, pl.String) for _ in columns]
        rounded = [n.round(0, mode="half_to_even").cast(pl.Int64, strict=False) for n in numbers[:3]]
        good = pl.all_horizontal(
            npi_ok(a),
            npi_ok(b),
            rounded[0].is_not_null(),
            *(n.is_null() | (r.is_not_null() & (n >= 0)) for n, r in zip(numbers[:3], rounded, strict=True)),
            *(n.is_null() | n.is_finite() for n in numbers[3:]),
        ).fill_null(False)
        select = [a, b, good, *rounded, *numbers[3:]]
        for n, t in zip(numbers, texts, strict=True):
            select += [n, t]
        return PolarsPlan(
            [e.alias(f"s{i}") for i, e in enumerate(select)],
            a.is_in(npis) | b.is_in(npis),
            chunk_rows=500_000,  # short rows (~30 MB a batch); each batch costs ~5 ms of planning
            numeric=tuple(c for c in columns if c),
            # Trimming 40 million NPIs costs a third of the scan: an NPI that matches once trimmed
            # either matches as it is or is not 10 characters long.
            maybe=raw_a.is_in(npis)
            | raw_b.is_in(npis)
            | (raw_a.str.len_bytes() != 10)
            | (raw_b.str.len_bytes() != 10),
        )

    def _count_columns(self) -> list[str | None]:
        """The file's columns for patients, transactions, same day, average and deviation of the wait."""
        if self.source == SharedPatientDataset.Source.CMS:
            return ["bene_count", "pair_count", "same_day_count", None, None]
        return ["patient_count", "transaction_count", None, "average_day_wait", "std_day_wait"]

    @cached_property
    def _interesting(self) -> set[str]:
        npis = interesting_npis()
        if not npis:
            raise ImportFileError(
                "no provider to keep pairs for: add our sites and physicians, and import NPPES for the area first"
            )
        return npis

    def row_key(self, row: tuple) -> str:
        return f"{row[0]},{row[1]}"

    def begin(self) -> None:
        self.dataset, _ = SharedPatientDataset.objects.get_or_create(
            key=self.dataset_key,
            defaults={"source": self.source, "year": self.year, "window_days": self.window},
        )

    def write_batch(self, rows: list[tuple]) -> None:
        run = self.run
        pairs: dict[tuple[str, str], tuple] = {}
        for row in rows:
            if row[2]:  # checked by the scan
                pairs[(row[0], row[1])] = row[3:8]
                continue
            a, b, raw = row[0], row[1], row[8:]
            problem = npi_problem(a or "") or npi_problem(b or "")
            if problem:
                self.reject(f"{a},{b}", problem)
                continue
            patients, transactions, same_day, wait, std = raw[0::2]
            bad = [
                f"{label} '{text[:20]}' is not a number"
                for label, text in zip(COUNT_LABELS, raw[1::2], strict=True)
                if text
            ]
            bad += [
                f"{label} {value} is out of range"
                for label, value in zip(COUNT_LABELS, raw[0::2], strict=True)
                if value is not None and not (math.isfinite(value) and abs(value) < 2**62)
            ]
            if patients is None and not bad:
                bad = ["no patient count"]
            if not bad and min(v for v in (patients, transactions, same_day) if v is not None) < 0:
                bad = ["a count is negative"]
            if bad:
                self.reject(f"{a},{b}", f"{a} -> {b}: {'; '.join(bad)}")
                continue
            pairs[(a, b)] = (
                round(patients),
                None if transactions is None else round(transactions),
                None if same_day is None else round(same_day),
                wait,
                std,
            )
        inserted, updated = upsert_rows(
            SharedPatientPair,
            ["dataset", "from_npi", "to_npi"],
            VALUE_FIELDS,
            [(self.dataset.pk, a, b, *values) for (a, b), values in pairs.items()],
        )
        run.inserted += inserted
        run.updated += updated
        run.unchanged += len(pairs) - inserted - updated

    def complete(self) -> None:
        self.dataset.pairs = self.dataset.pair_set.count()
        self.dataset.imported_at = timezone.now()
        self.dataset.save(update_fields=["pairs", "imported_at"])
        self.run.details["dataset"] = self.dataset.label

    def after(self) -> None:
        if not self.already_done and (self.run.inserted or self.run.updated):
            from liaison.marketdata.scoring import rescore

            rescore(actor=self.actor)
