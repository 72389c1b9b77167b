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

import re
from pathlib import Path
from typing import Any

from django.utils import timezone

from liaison.marketdata.models import ImportKind, SharedPatientDataset, SharedPatientPair
from liaison.marketdata.nppes import describe_wrong_kind
from liaison.marketdata.nppes_rows import npi_problem
from liaison.marketdata.runs import FileImport
from liaison.marketdata.scan import CsvScan, ImportFileError, SourceFile, first_lines, year_from_name
from liaison.marketdata.scoring import interesting_npis

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
        npis = sorted(interesting_npis())
        if not npis:
            raise ImportFileError(
                "no provider to keep pairs for: add our sites and physicians, and import NPPES for the area first"
            )
        scan.table("f_npis", npis)
        a, b = self.columns[0], self.columns[1]
        if self.source == SharedPatientDataset.Source.CMS:
            select = (
                "trim(npi1), trim(npi2), trim(bene_count), trim(pair_count), trim(same_day_count), NULL, NULL"
            )
        else:
            select = (
                "trim(from_npi), trim(to_npi), trim(patient_count), trim(transaction_count), NULL, "
                "trim(average_day_wait), trim(std_day_wait)"
            )
        keep = f"trim({a}) IN (SELECT v FROM f_npis) OR trim({b}) IN (SELECT v FROM f_npis)"  # noqa: S608 (identifiers quoted; values go through tables)
        return select, keep, a

    def row_key(self, row: tuple) -> str:
        return f"{row[0]},{row[1]}"

    def begin(self) -> None:
        self.dataset, created = SharedPatientDataset.objects.get_or_create(
            key=self.dataset_key,
            defaults={"source": self.source, "year": self.year, "window_days": self.window},
        )
        self.first_load = created or not self.dataset.pair_set.exists()

    def write_batch(self, rows: list[tuple]) -> None:
        run = self.run
        pairs: dict[tuple[str, str], SharedPatientPair] = {}
        for a, b, patients, transactions, same_day, wait, std in rows:
            key = f"{a},{b}"
            problem = npi_problem(a or "") or npi_problem(b or "")
            if problem:
                self.reject(key, problem)
                continue
            try:
                pair = SharedPatientPair(
                    dataset=self.dataset,
                    from_npi=a,
                    to_npi=b,
                    patients=_count(patients, "patient count"),
                    transactions=_count(transactions, "pair/transaction count", required=False),
                    same_day=_count(same_day, "same-day count", required=False),
                    average_day_wait=_float(wait),
                    std_day_wait=_float(std),
                )
            except ValueError as exc:
                self.reject(key, f"{a} -> {b}: {exc}")
                continue
            pairs[(a, b)] = pair
        if not pairs:
            return
        existing = {}
        if not self.first_load:
            froms = {a for a, _ in pairs}
            for pair in SharedPatientPair.objects.filter(dataset=self.dataset, from_npi__in=froms):
                existing[(pair.from_npi, pair.to_npi)] = pair
        new, changed = [], []
        for key, pair in pairs.items():
            old = existing.get(key)
            if old is None:
                new.append(pair)
            elif _values(old) != _values(pair):
                pair.pk = old.pk
                changed.append(pair)
            else:
                run.unchanged += 1
        # ignore_conflicts: a pair repeated further down the file must not stop the import.
        SharedPatientPair.objects.bulk_create(new, batch_size=2000, ignore_conflicts=True)
        SharedPatientPair.objects.bulk_update(
            changed,
            ["patients", "transactions", "same_day", "average_day_wait", "std_day_wait"],
            batch_size=1000,
        )
        run.inserted += len(new)
        run.updated += len(changed)

    def complete(self) -> None:
        self.dataset.pairs = self.dataset.pair_set.count()
        self.dataset.imported_at = timezone.now()
        self.dataset.save(update_fields=["pairs", "imported_at"])
        self.run.details["dataset"] = self.dataset.label

    def after(self) -> None:
        if not self.already_done:
            from liaison.marketdata.scoring import rescore

            rescore(actor=self.actor)


def _values(pair: SharedPatientPair) -> tuple:
    return (pair.patients, pair.transactions, pair.same_day, pair.average_day_wait, pair.std_day_wait)


def _count(value: str | None, label: str, required: bool = True) -> int | None:
    value = (value or "").strip()
    if not value:
        if required:
            raise ValueError(f"no {label}")
        return None
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{label} '{value[:20]}' is not a number")
    if number < 0:
        raise ValueError(f"{label} {value} is negative")
    return round(number)


def _float(value: str | None) -> float | None:
    value = (value or "").strip()
    try:
        return float(value) if value else None
    except ValueError:
        return None
