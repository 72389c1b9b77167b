"""NPPES-shaped and shared-patient files made up for the demo, the tests and the benchmarks.

Every value is synthetic (names from lists, NPIs that pass the check digit but were not looked up);
the shapes are the real ones: the 330 NPPES columns, every value quoted, MM/DD/YYYY dates, 9-digit
ZIP codes, most of the 280 licence and identifier columns empty.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from liaison.directory.validators import npi_check_digit_ok
from liaison.marketdata.nppes_columns import HEADER_V1, HEADER_V2

V2_INDEX = {name: i for i, name in enumerate(HEADER_V2)}


def npi_for(body: int) -> str:
    """The valid NPI whose first nine digits are `body` (100000000 <= body < 300000000)."""
    text = f"{body:09d}"
    return next(text + d for d in "0123456789" if npi_check_digit_ok(text + d))


def npi_sequence(start: int = 100_000_000, step: int = 1) -> Iterator[str]:
    body = start
    while True:
        yield npi_for(body)
        body += step


@dataclass
class NppesEntry:
    """One row, by field name; what is not given stays empty."""

    npi: str
    entity_type: str = "1"
    last_name: str = ""
    first_name: str = ""
    middle_name: str = ""
    credential: str = ""
    sex: str = ""
    org_name: str = ""
    address_line1: str = ""
    address_line2: str = ""
    city: str = ""
    state: str = ""
    zip_code: str = ""
    phone: str = ""
    fax: str = ""
    taxonomies: list[str] = field(default_factory=list)  # the first is primary
    enumerated_on: date | None = date(2010, 5, 1)
    updated_on: date | None = date(2024, 1, 15)
    deactivated_on: date | None = None
    reactivated_on: date | None = None
    licence: str = ""

    def values(self, header: list[str]) -> list[str]:
        row = [""] * len(header)
        index = {name: i for i, name in enumerate(header)}

        def put(column: str, value: str) -> None:
            if column in index and value:
                row[index[column]] = value

        put("NPI", self.npi)
        if self.entity_type == "" and self.deactivated_on:
            put("NPI Deactivation Date", f"{self.deactivated_on:%m/%d/%Y}")
            return row
        put("Entity Type Code", self.entity_type)
        put("Provider Organization Name (Legal Business Name)", self.org_name.upper())
        put("Provider Last Name (Legal Name)", self.last_name.upper())
        put("Provider First Name", self.first_name.upper())
        put("Provider Middle Name", self.middle_name.upper())
        put("Provider Credential Text", self.credential)
        for prefix in (
            "Provider First Line Business Mailing Address",
            "Provider First Line Business Practice Location Address",
        ):
            put(prefix, self.address_line1.upper())
        for col in (
            "Provider Second Line Business Mailing Address",
            "Provider Second Line Business Practice Location Address",
        ):
            put(col, self.address_line2.upper())
        for kind in ("Mailing", "Practice Location"):
            put(f"Provider Business {kind} Address City Name", self.city.upper())
            put(f"Provider Business {kind} Address State Name", self.state)
            put(f"Provider Business {kind} Address Postal Code", self.zip_code)
            put(
                f"Provider Business {kind} Address Country Code (If outside U.S.)", "US" if self.state else ""
            )
            put(f"Provider Business {kind} Address Telephone Number", self.phone)
            put(f"Provider Business {kind} Address Fax Number", self.fax)
        put("Provider Enumeration Date", f"{self.enumerated_on:%m/%d/%Y}" if self.enumerated_on else "")
        put("Last Update Date", f"{self.updated_on:%m/%d/%Y}" if self.updated_on else "")
        put("NPI Deactivation Date", f"{self.deactivated_on:%m/%d/%Y}" if self.deactivated_on else "")
        put("NPI Reactivation Date", f"{self.reactivated_on:%m/%d/%Y}" if self.reactivated_on else "")
        put("Provider Sex Code" if "Provider Sex Code" in index else "Provider Gender Code", self.sex)
        for i, code in enumerate(self.taxonomies[:15], start=1):
            put(f"Healthcare Provider Taxonomy Code_{i}", code)
            put(f"Healthcare Provider Primary Taxonomy Switch_{i}", "Y" if i == 1 else "N")
            if self.licence:
                put(f"Provider License Number_{i}", self.licence)
                put(f"Provider License Number State Code_{i}", self.state)
        if self.entity_type == "1":
            put("Is Sole Proprietor", "N")
        return row


def write_nppes(path: Path, entries: Iterable[NppesEntry], *, version: int = 2) -> Path:
    header = HEADER_V2 if version == 2 else HEADER_V1
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(header)
        for entry in entries:
            writer.writerow(entry.values(header))
    return path


def write_shared_patients(path: Path, pairs: Iterable[tuple[str, str, int, int, int]]) -> Path:
    """CMS format: no header, npi1,npi2,pair_count,bene_count,same_day_count."""
    with open(path, "w", encoding="utf-8") as f:
        for a, b, pair_count, bene_count, same_day in pairs:
            f.write(f"{a},{b},{pair_count},{bene_count},{same_day}\n")
    return path


# --- big files for the benchmarks ------------------------------------------------------------

_LAST = [
    "SMITH",
    "JOHNSON",
    "WILLIAMS",
    "BROWN",
    "JONES",
    "GARCIA",
    "MILLER",
    "DAVIS",
    "RODRIGUEZ",
    "MARTINEZ",
    "HERNANDEZ",
    "LOPEZ",
    "GONZALEZ",
    "WILSON",
    "ANDERSON",
    "THOMAS",
    "TAYLOR",
    "MOORE",
    "JACKSON",
    "MARTIN",
    "LEE",
    "PEREZ",
    "THOMPSON",
    "WHITE",
    "HARRIS",
    "SANCHEZ",
    "CLARK",
    "RAMIREZ",
    "LEWIS",
    "ROBINSON",
    "PATEL",
    "NGUYEN",
    "KIM",
    "CHEN",
    "SHAH",
    "COHEN",
    "MURPHY",
    "KELLY",
    "OKAFOR",
    "SINGH",
]
_FIRST = [
    "JAMES",
    "MARY",
    "ROBERT",
    "PATRICIA",
    "JOHN",
    "JENNIFER",
    "MICHAEL",
    "LINDA",
    "DAVID",
    "ELIZABETH",
    "WILLIAM",
    "BARBARA",
    "RICHARD",
    "SUSAN",
    "JOSEPH",
    "JESSICA",
    "THOMAS",
    "SARAH",
    "PRIYA",
    "WEI",
    "AHMED",
    "FATIMA",
    "CARLOS",
    "ANA",
    "OLUWASEUN",
    "MEI",
    "RAJ",
    "ELENA",
    "IVAN",
    "SOFIA",
]
_STREETS = [
    "MAIN ST",
    "OAK AVE",
    "MAPLE DR",
    "PARK BLVD",
    "RIVER RD",
    "HOSPITAL DR",
    "MEDICAL PKWY",
    "CENTER ST",
    "HIGH ST",
    "BROAD ST",
    "LAKE SHORE DR",
    "SUMMIT AVE",
    "CHURCH ST",
    "MARKET ST",
    "UNIVERSITY AVE",
]
_TAXONOMIES = [
    ("207Q00000X", "MD", 14),
    ("207R00000X", "MD", 12),
    ("363LF0000X", "NP", 10),
    ("363A00000X", "PA-C", 8),
    ("208000000X", "MD", 5),
    ("207X00000X", "MD", 2),
    ("207XS0114X", "MD", 1),
    ("111N00000X", "DC", 4),
    ("1223G0001X", "DDS", 6),
    ("225100000X", "PT", 8),
    ("152W00000X", "OD", 3),
    ("2084P0800X", "MD", 3),
    ("207RC0000X", "MD", 2),
    ("213E00000X", "DPM", 1),
    ("207P00000X", "DO", 3),
    ("163W00000X", "RN", 13),
]
_ORG_TAXONOMIES = ["261QP2300X", "282N00000X", "332B00000X", "3336C0003X", "251E00000X", "261QU0200X"]


@dataclass
class BigFile:
    path: Path
    rows: int
    local_npis: list[str]
    bytes: int


def _zip_pool(
    rng: random.Random, centre: tuple[float, float] | None, radius: float
) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    import zipcodes

    from liaison.core.geo import haversine_miles

    everywhere, local = [], []
    for z in zipcodes.list_all():
        if z.get("zip_code_type") != "STANDARD":
            continue
        item = (z["zip_code"], z["city"].upper(), z["state"])
        everywhere.append(item)
        if centre and haversine_miles(centre[0], centre[1], float(z["lat"]), float(z["long"])) <= radius:
            local.append(item)
    return everywhere, local


def generate_nppes_file(
    path: Path,
    *,
    target_bytes: int,
    seed: int = 7,
    centre: tuple[float, float] | None = None,
    local_radius: float = 25,
    local_share: float = 0.006,
    deactivated_share: float = 0.02,
) -> BigFile:
    """A V2 NPPES file of about `target_bytes`, ~1.1 KB a row like the real one; `local_share` of the
    rows practise within `local_radius` miles of `centre` (their NPIs are returned)."""
    rng = random.Random(seed)
    everywhere, local = _zip_pool(rng, centre, local_radius)
    weights = [t[2] for t in _TAXONOMIES]
    idx = V2_INDEX
    n_cols = len(HEADER_V2)
    written = rows = 0
    local_npis: list[str] = []
    body = 100_000_000
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(HEADER_V2)
        while written < target_bytes:
            lines = []
            for _ in range(2000):
                body += rng.randrange(1, 6)
                npi = npi_for(body)
                row = [""] * n_cols
                row[0] = npi
                if rng.random() < deactivated_share:
                    row[idx["NPI Deactivation Date"]] = (
                        f"{rng.randrange(1, 13):02d}/{rng.randrange(1, 28):02d}/20{rng.randrange(10, 25)}"
                    )
                    lines.append(row)
                    continue
                is_local = bool(local) and rng.random() < local_share
                zip5, city, state = rng.choice(local if is_local else everywhere)
                street = f"{rng.randrange(1, 9999)} {rng.choice(_STREETS)}"
                phone = f"{rng.randrange(201, 989)}{rng.randrange(200, 999)}{rng.randrange(1000, 9999)}"
                organisation = rng.random() < 0.2
                row[1] = "2" if organisation else "1"
                if organisation:
                    row[idx["Provider Organization Name (Legal Business Name)"]] = (
                        f"{rng.choice(_LAST)} {rng.choice(['CLINIC', 'MEDICAL GROUP', 'HEALTH LLC', 'PHYSICAL THERAPY INC'])}"
                    )
                    row[idx["Employer Identification Number (EIN)"]] = "<UNAVAIL>"
                    row[idx["Authorized Official Last Name"]] = rng.choice(_LAST)
                    row[idx["Authorized Official First Name"]] = rng.choice(_FIRST)
                    row[idx["Authorized Official Title or Position"]] = rng.choice(
                        ["CEO", "PRESIDENT", "OFFICE MANAGER"]
                    )
                    row[idx["Authorized Official Telephone Number"]] = phone
                    row[idx["Is Organization Subpart"]] = "N"
                    codes = [rng.choice(_ORG_TAXONOMIES)]
                    credential = ""
                else:
                    row[idx["Provider Last Name (Legal Name)"]] = rng.choice(_LAST)
                    row[idx["Provider First Name"]] = rng.choice(_FIRST)
                    row[idx["Provider Middle Name"]] = rng.choice(["A", "B", "J", "M", "", ""])
                    code, credential, _ = rng.choices(_TAXONOMIES, weights)[0]
                    row[idx["Provider Credential Text"]] = credential
                    row[idx["Provider Sex Code"]] = rng.choice("MF")
                    row[idx["Is Sole Proprietor"]] = rng.choice("NNNY")
                    codes = [code] + ([rng.choice(_TAXONOMIES)[0]] if rng.random() < 0.2 else [])
                for kind in ("Mailing", "Practice Location"):
                    first = (
                        "First Line Business Mailing Address"
                        if kind == "Mailing"
                        else "First Line Business Practice Location Address"
                    )
                    row[idx[f"Provider {first}"]] = (
                        street
                        if kind != "Mailing" or rng.random() < 0.7
                        else f"PO BOX {rng.randrange(1, 9999)}"
                    )
                    row[idx[f"Provider Business {kind} Address City Name"]] = city
                    row[idx[f"Provider Business {kind} Address State Name"]] = state
                    row[idx[f"Provider Business {kind} Address Postal Code"]] = (
                        f"{zip5}{rng.randrange(1000, 9999)}"
                    )
                    row[idx[f"Provider Business {kind} Address Country Code (If outside U.S.)"]] = "US"
                    row[idx[f"Provider Business {kind} Address Telephone Number"]] = phone
                    if rng.random() < 0.6:
                        row[idx[f"Provider Business {kind} Address Fax Number"]] = phone[:-1] + "9"
                row[idx["Provider Enumeration Date"]] = (
                    f"{rng.randrange(1, 13):02d}/{rng.randrange(1, 28):02d}/20{rng.randrange(5, 24):02d}"
                )
                row[idx["Last Update Date"]] = (
                    f"{rng.randrange(1, 13):02d}/{rng.randrange(1, 28):02d}/20{rng.randrange(12, 25)}"
                )
                row[idx["Certification Date"]] = row[idx["Last Update Date"]]
                for i, code in enumerate(codes, start=1):
                    row[idx[f"Healthcare Provider Taxonomy Code_{i}"]] = code
                    row[idx[f"Healthcare Provider Primary Taxonomy Switch_{i}"]] = "Y" if i == 1 else "N"
                    row[idx[f"Provider License Number_{i}"]] = (
                        f"{state}{rng.randrange(10000, 999999)}" if credential else ""
                    )
                    row[idx[f"Provider License Number State Code_{i}"]] = state if credential else ""
                for i in range(1, rng.choice([0, 0, 1, 2, 3, 5]) + 1):
                    row[idx[f"Other Provider Identifier_{i}"]] = f"{rng.randrange(100000, 9999999)}"
                    row[idx[f"Other Provider Identifier Type Code_{i}"]] = rng.choice(["01", "04", "05"])
                    row[idx[f"Other Provider Identifier State_{i}"]] = state
                    row[idx[f"Other Provider Identifier Issuer_{i}"]] = rng.choice(
                        ["", "BCBS", "AETNA", "MEDICAID"]
                    )
                if is_local:
                    local_npis.append(npi)
                lines.append(row)
            writer.writerows(lines)
            rows += len(lines)
            written = f.tell()
    return BigFile(path=path, rows=rows, local_npis=local_npis, bytes=path.stat().st_size)
