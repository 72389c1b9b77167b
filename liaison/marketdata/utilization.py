"""`liaison import utilization FILE`: Medicare Physician & Other Practitioners files.

- By Provider and Service (`Rndrng_NPI`, `HCPCS_Cd`, `HCPCS_Desc`, `Place_Of_Srvc`, `Tot_Benes`,
  `Tot_Srvcs`, `Avg_Mdcr_Pymt_Amt`...): what each provider does, and how much.
- By Provider (`Tot_Benes`, `Bene_Dual_Cnt`, `Bene_Ndual_Cnt`, `Bene_Avg_Age`...): volume and the
  dual-eligible share (a payer-mix signal).

Only the providers in our directory are kept. The data year comes from the file name
(`MUP_PHY_R24_P05_V10_D22_Prov_Svc.csv` -> 2022) or `--year`. CMS leaves counts under 11 blank.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.db.models import Model

from liaison.directory.models import Provider
from liaison.marketdata.models import ImportKind, MedicareProfile, ProcedureVolume
from liaison.marketdata.nppes import describe_wrong_kind
from liaison.marketdata.nppes_rows import npi_problem
from liaison.marketdata.runs import FileImport
from liaison.marketdata.scan import (
    CsvScan,
    ImportFileError,
    SourceFile,
    first_lines,
    sql_ident,
    year_from_name,
)

SERVICE_COLUMNS = {
    "hcpcs_code": "HCPCS_Cd",
    "hcpcs_description": "HCPCS_Desc",
    "place_of_service": "Place_Of_Srvc",
    "beneficiaries": "Tot_Benes",
    "services": "Tot_Srvcs",
    "average_payment": "Avg_Mdcr_Pymt_Amt",
}
PROVIDER_COLUMNS = {
    "beneficiaries": "Tot_Benes",
    "services": "Tot_Srvcs",
    "hcpcs_codes": "Tot_HCPCS_Cds",
    "dual_eligible": "Bene_Dual_Cnt",
    "not_dual_eligible": "Bene_Ndual_Cnt",
    "average_age": "Bene_Avg_Age",
    "average_risk_score": "Bene_Avg_Risk_Scre",
    "total_payment": "Tot_Mdcr_Pymt_Amt",
}
INTEGERS = {"beneficiaries", "hcpcs_codes", "dual_eligible", "not_dual_eligible"}


class UtilizationImport(FileImport):
    kind = ImportKind.UTILIZATION
    default_batch_size = 10000

    def __init__(self, path: Path | str, *, year: int | None = None, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.year = year

    def detect(self, src: SourceFile) -> None:
        lines = first_lines(src.path, 1)
        header = lines[0] if lines else []
        if "Rndrng_NPI" in header and "HCPCS_Cd" in header:
            self.by_service, self.wanted = True, SERVICE_COLUMNS
            self.file_format = "Medicare Physician & Other Practitioners, by provider and service"
        elif "Rndrng_NPI" in header and "Tot_Benes" in header:
            self.by_service, self.wanted = False, PROVIDER_COLUMNS
            self.file_format = "Medicare Physician & Other Practitioners, by provider"
        else:
            raise ImportFileError(
                f"{src.label}: {describe_wrong_kind(src.path, 'a Medicare utilisation file', header)}"
            )
        self.year = self.year or year_from_name(f"{src.given.name} {src.member}")
        if not self.year:
            raise ImportFileError(f"{src.label}: cannot tell the data year from the file name: give --year")
        self.columns = header
        self.file_format += f", {self.year}"

    def filters(self) -> dict[str, Any]:
        return {"year": self.year}

    def prepare(self, scan: CsvScan) -> tuple[str, str, str]:
        npis = sorted(set(Provider.objects.exclude(npi="").values_list("npi", flat=True)))
        scan.table("f_npis", npis)
        select = ", ".join(
            ['trim("Rndrng_NPI")']
            + [f"trim({sql_ident(col)})" if col in self.columns else "NULL" for col in self.wanted.values()]
        )
        return select, 'trim("Rndrng_NPI") IN (SELECT v FROM f_npis)', "Rndrng_NPI"

    def after(self) -> None:
        if not self.already_done and (self.run.inserted or self.run.updated):
            from liaison.marketdata.scoring import rescore

            rescore(actor=self.actor)  # volumes are part of the score

    def row_key(self, row: tuple) -> str:
        return f"{row[0]},{row[1]}" if self.by_service else str(row[0])

    def write_batch(self, rows: list[tuple]) -> None:
        model = ProcedureVolume if self.by_service else MedicareProfile
        names = list(self.wanted)
        objects: dict[tuple, Model] = {}
        for row in rows:
            npi, values = row[0], dict(zip(names, row[1:], strict=True))
            if problem := npi_problem(npi or ""):
                self.reject(npi or "", problem)
                continue
            try:
                fields = {
                    name: _number(name, values[name])
                    if name not in ("hcpcs_code", "hcpcs_description", "place_of_service")
                    else (values[name] or "")
                    for name in names
                }
            except ValueError as exc:
                self.reject(npi, f"NPI {npi}: {exc}")
                continue
            if self.by_service:
                if not fields["hcpcs_code"]:
                    self.reject(npi, f"NPI {npi}: no HCPCS code")
                    continue
                fields["hcpcs_code"] = fields["hcpcs_code"][:10]
                fields["hcpcs_description"] = fields["hcpcs_description"][:300]
                fields["place_of_service"] = fields["place_of_service"][:1]
                key = (npi, fields["hcpcs_code"], fields["place_of_service"])
            else:
                key = (npi,)
            objects[key] = model(npi=npi, year=self.year, **fields)
        self._upsert(model, objects, [n for n in names if n not in ("hcpcs_code", "place_of_service")])

    def _upsert(self, model: type, objects: dict[tuple, Model], fields: list[str]) -> None:
        run = self.run
        if not objects:
            return
        existing = {}
        for obj in model.objects.filter(year=self.year, npi__in={k[0] for k in objects}):
            key = (obj.npi, obj.hcpcs_code, obj.place_of_service) if self.by_service else (obj.npi,)
            existing[key] = obj
        new, changed = [], []
        for key, obj in objects.items():
            old = existing.get(key)
            if old is None:
                new.append(obj)
            elif any(getattr(old, f) != getattr(obj, f) for f in fields):
                obj.pk = old.pk
                changed.append(obj)
            else:
                run.unchanged += 1
        model.objects.bulk_create(new, batch_size=2000, ignore_conflicts=True)
        model.objects.bulk_update(changed, fields, batch_size=1000)
        run.inserted += len(new)
        run.updated += len(changed)


def _number(name: str, value: str | None) -> float | int | None:
    value = (value or "").strip().replace(",", "")
    if not value or value == "*":
        return None  # CMS leaves counts between 1 and 10 blank
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name.replace('_', ' ')} '{value[:20]}' is not a number")
    return round(number) if name in INTEGERS else number
