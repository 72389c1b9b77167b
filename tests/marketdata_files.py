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


def build_market(site, our_physician, referring_provider, far_provider, tmp_path):
    """Our physician downtown; three competing orthopaedic surgeons two miles away; Frank Family
    (a referring family physician, 2.6 miles) who shares 143 patients with the competitors and none
    with us; a loyal internist who shares 40 with us; Lake Faraway in Cleveland. Shared patients
    imported, opportunities scored."""
    from liaison.directory import services as directory
    from liaison.marketdata.shared_patients import SharedPatientsImport

    rival = directory.create_practice(actor="test", name="Rival Orthopaedics")
    office = directory.create_location(
        rival, actor="test", address_line1="3 Rival Rd", city="Columbus", state="OH", zip_code="43212"
    )
    surgeons = [
        directory.create_provider(
            actor="test",
            first_name="Rival",
            last_name=f"Surgeon{i}",
            npi=npi(900 + i),
            primary_taxonomy_code=code,
            locations=[office],
        )
        for i, code in enumerate(["207X00000X", "207XS0114X", "207XX0005X"])
    ]
    loyal = directory.create_provider(
        actor="test",
        first_name="Lola",
        last_name="Loyal",
        credential="DO",
        npi=npi(950),
        primary_taxonomy_code="207R00000X",
        locations=list(referring_provider.locations.all()),
    )
    pairs = [
        (referring_provider.npi, surgeons[0].npi, 90, 50, 1),
        (referring_provider.npi, surgeons[1].npi, 80, 50, 0),
        (surgeons[2].npi, referring_provider.npi, 70, 43, 0),
        (loyal.npi, our_physician.npi, 60, 40, 0),
        (far_provider.npi, our_physician.npi, 30, 25, 0),
    ]
    path = write_shared_patients(tmp_path / "physician-shared-patient-patterns-2015-days30.txt", pairs)
    SharedPatientsImport(path, actor="test").execute()
    return {"rival": rival, "surgeons": surgeons, "loyal": loyal}
