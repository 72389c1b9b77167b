"""Small NPPES-shaped and shared-patient files for the market data tests."""

from __future__ import annotations

import zipfile
from datetime import date
from pathlib import Path

from liaison.marketdata.synthetic import NppesEntry, npi_for, write_nppes, write_shared_patients

__all__ = ["NppesEntry", "columbus", "far_away", "npi", "write_nppes", "write_shared_patients", "zip_it"]


def npi(n: int) -> str:
    """Valid NPIs that the directory fixtures (tests.conftest.make_npi) do not use."""
    return npi_for(150_000_000 + n)


def columbus(n: int, **kwargs: object) -> NppesEntry:
    """An individual practising in Columbus (43215, downtown), near the `site` fixture."""
    fields = {
        "npi": npi(n),
        "last_name": f"Local{n}",
        "first_name": "Pat",
        "credential": "MD",
        "sex": "F",
        "address_line1": f"{100 + n} High St",
        "city": "Columbus",
        "state": "OH",
        "zip_code": "432151234",
        "phone": "6145550100",
        "taxonomies": ["207Q00000X"],
    }
    fields.update(kwargs)
    return NppesEntry(**fields)


def far_away(n: int, **kwargs: object) -> NppesEntry:
    """An individual in Phoenix, far from every test site."""
    fields = {
        "npi": npi(n),
        "last_name": f"Faraway{n}",
        "first_name": "Sam",
        "credential": "DO",
        "address_line1": f"{n} Desert Rd",
        "city": "Phoenix",
        "state": "AZ",
        "zip_code": "85004",
        "taxonomies": ["207R00000X"],
    }
    fields.update(kwargs)
    return NppesEntry(**fields)


def zip_it(
    csv_path: Path, zip_path: Path, *, member: str | None = None, extra: dict[str, str] | None = None
) -> Path:
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.write(csv_path, member or csv_path.name)
        for name, text in (extra or {}).items():
            z.writestr(name, text)
    return zip_path


DEACTIVATED = date(2025, 3, 1)
