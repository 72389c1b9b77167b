"""One NPPES row, read and checked: names in normal case, the practice address, taxonomy codes.

NPPES writes everything in capitals and dates as MM/DD/YYYY; the full file also carries, for each
deactivated NPI, a row with nothing but the NPI and its deactivation date.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any, NamedTuple

from django.core.exceptions import ValidationError

from liaison.core.geo import normalize_zip
from liaison.directory.models import US_STATES, Gender
from liaison.directory.validators import NPI_RE, TAXONOMY_RE, normalize_phone
from liaison.marketdata.nppes_columns import TAXONOMY_SLOTS


class Row(NamedTuple):
    npi: str
    entity_type: str
    org_name: str
    last_name: str
    first_name: str
    middle_name: str
    name_prefix: str
    name_suffix: str
    credential: str
    other_org_name: str
    address_line1: str
    address_line2: str
    city: str
    state: str
    zip_code: str
    country: str
    phone: str
    fax: str
    enumerated_on: str
    updated_on: str
    deactivation_reason: str
    deactivated_on: str
    reactivated_on: str
    sex: str
    taxonomies: tuple
    primary_switches: tuple

    @classmethod
    def from_db(cls, values: Sequence[Any]) -> Row:
        plain = [v or "" for v in values[:24]]
        return cls(
            *plain,
            taxonomies=tuple(v or "" for v in values[24 : 24 + TAXONOMY_SLOTS]),
            primary_switches=tuple(v or "" for v in values[24 + TAXONOMY_SLOTS :]),
        )


_ABBREVIATIONS = {
    "STREET": "ST",
    "AVENUE": "AVE",
    "ROAD": "RD",
    "DRIVE": "DR",
    "BOULEVARD": "BLVD",
    "LANE": "LN",
    "COURT": "CT",
    "PARKWAY": "PKWY",
    "PLACE": "PL",
    "SUITE": "STE",
    "HIGHWAY": "HWY",
    "CIRCLE": "CIR",
    "TERRACE": "TER",
    "NORTH": "N",
    "SOUTH": "S",
    "EAST": "E",
    "WEST": "W",
    "BUILDING": "BLDG",
    "FLOOR": "FL",
}
_NON_WORD = re.compile(r"[^A-Z0-9 ]+")


def address_key(line1: str, zip_code: str) -> str:
    """Two spellings of one street address give one key: '1824 King Street' / '1824 KING ST.'."""
    words = _NON_WORD.sub(" ", (line1 or "").upper()).split()
    return f"{' '.join(_ABBREVIATIONS.get(w, w) for w in words)}|{(zip_code or '')[:5]}"


_KEEP_UPPER = {
    "LLC",
    "PC",
    "PA",
    "PLLC",
    "LLP",
    "MD",
    "DO",
    "DDS",
    "NP",
    "PO",
    "II",
    "III",
    "IV",
    "USA",
}
_KEEP_UPPER |= {"NE", "NW", "SE", "SW", "OB", "GYN", "ENT"}


@lru_cache(maxsize=1 << 16)
def titled(value: str) -> str:
    """NPPES writes names in capitals: 'DAVID A WIEBE' -> 'David A Wiebe', keeping 'LLC', 'MD'..."""
    out = []
    for word in (value or "").split():
        bare = word.strip(".,()")
        if bare.upper() in _KEEP_UPPER or word[:1].isdigit():
            out.append(word.upper() if bare.upper() in _KEEP_UPPER else word.lower())
        else:
            out.append("-".join(_capital(part) for part in word.split("-")))
    return " ".join(out)


def _capital(part: str) -> str:
    lower = part.lower()
    if lower.startswith("mc") and len(lower) > 3:
        return "Mc" + lower[2:3].upper() + lower[3:]
    return lower[:1].upper() + lower[1:]


def parse_date(value: str) -> date | None:
    value = (value or "").strip()
    if not value:
        return None
    month, _, rest = value.partition("/")
    day, _, year = rest.partition("/")
    # NPPES writes MM/DD/YYYY: read without strptime (a first import reads ~30,000 dates)
    if len(year) == 4 and value.isascii() and month.isdigit() and day.isdigit() and year.isdigit():
        try:
            return date(int(year), int(month), int(day))
        except ValueError:
            return None
    for fmt in ("%m/%d/%Y", "%Y-%m-%d", "%m/%d/%y"):
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    return None


class RowProblem(Exception):
    pass


_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def check_digit_ok(npi: str) -> bool:
    """The directory's rule (`validators.npi_check_digit_ok`: Luhn with the 80840 prefix, which adds
    24), unrolled for the millions of NPIs an import checks."""
    d = [ord(c) - 48 for c in npi]
    total = 24 + _DOUBLED[d[0]] + d[1] + _DOUBLED[d[2]] + d[3] + _DOUBLED[d[4]] + d[5] + _DOUBLED[d[6]]
    return (total + d[7] + _DOUBLED[d[8]] + d[9]) % 10 == 0


@lru_cache(maxsize=200_000)
def npi_problem(npi: str) -> str | None:
    if not NPI_RE.match(npi):
        return f"NPI '{npi[:20]}' is not 10 digits starting with 1 or 2"
    if not check_digit_ok(npi):
        return f"NPI {npi} fails the check digit (a typo or a damaged row)"
    return None


@dataclass
class Parsed:
    npi: str
    entity_type: int | None
    hash: str
    values: dict[str, Any]
    location: dict[str, str] | None
    address_key: str
    address: str
    taxonomy_codes: list[str]
    primary_code: str
    enumerated_on: date | None
    updated_on: date | None
    deactivated_on: date | None
    reactivated_on: date | None
    location_problem: str = ""

    @property
    def is_deactivated(self) -> bool:
        return bool(self.deactivated_on) and not (
            self.reactivated_on and self.reactivated_on >= self.deactivated_on
        )

    @property
    def deactivation_only(self) -> bool:
        return self.entity_type is None and self.deactivated_on is not None


def _cut(value: str, n: int) -> str:
    return value.strip()[:n]


def row_hash(row: Row) -> str:
    """What NPPES says about an NPI, in 40 characters: equal hashes, nothing to do."""
    text = "\x1f".join([*row[:24], *row.taxonomies, *row.primary_switches])
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


def parse_row(row: Row) -> Parsed:
    npi = row.npi.strip()
    if problem := npi_problem(npi):
        raise RowProblem(problem)
    digest = row_hash(row)
    entity = row.entity_type.strip()
    deactivated, reactivated = parse_date(row.deactivated_on), parse_date(row.reactivated_on)
    common = {
        "npi": npi,
        "hash": digest,
        "enumerated_on": parse_date(row.enumerated_on),
        "updated_on": parse_date(row.updated_on),
        "deactivated_on": deactivated,
        "reactivated_on": reactivated,
    }
    if not entity:
        if deactivated is None:
            raise RowProblem("no entity type code (1 or 2) and no deactivation date")
        return Parsed(
            entity_type=None,
            values={},
            location=None,
            address_key="",
            address="",
            taxonomy_codes=[],
            primary_code="",
            **common,
        )
    if entity not in ("1", "2"):
        raise RowProblem(f"entity type code '{entity[:5]}' is neither 1 (individual) nor 2 (organisation)")
    codes, primary = [], ""
    for code, switch in zip(row.taxonomies, row.primary_switches, strict=True):
        code = code.strip().upper()
        if not code or not TAXONOMY_RE.match(code) or code in codes:
            continue
        codes.append(code)
        if switch.strip().upper() == "Y" and not primary:
            primary = code
    primary = primary or (codes[0] if codes else "")
    if entity == "1":
        if not row.last_name.strip():
            raise RowProblem("an individual without a last name")
        sex = row.sex.strip().upper()
        values: dict[str, Any] = {
            "first_name": _cut(titled(row.first_name), 80) or "(no first name)",
            "middle_name": _cut(titled(row.middle_name), 80),
            "last_name": _cut(titled(row.last_name), 80),
            "name_prefix": _cut(titled(row.name_prefix), 20),
            "name_suffix": _cut(titled(row.name_suffix), 20),
            "credential": _cut(row.credential.upper(), 40),
            "gender": sex if sex in (Gender.FEMALE, Gender.MALE, Gender.OTHER) else "",
            "primary_taxonomy": primary,
            "secondary_taxonomies": sorted(c for c in codes if c != primary),
        }
    else:
        name = row.org_name.strip() or row.other_org_name.strip()
        if not name:
            raise RowProblem("an organisation without a name")
        values = {"name": _cut(titled(name), 200)}
    location, key, address, problem = _location(row)
    return Parsed(
        entity_type=int(entity),
        values=values,
        location=location,
        address_key=key,
        address=address,
        taxonomy_codes=codes,
        primary_code=primary,
        location_problem=problem,
        **common,
    )


def _phone(value: str) -> str:
    try:
        return normalize_phone(value)
    except ValidationError:
        return ""


def _location(row: Row) -> tuple[dict[str, str] | None, str, str, str]:
    line1 = row.address_line1.strip()
    state = row.state.strip().upper()
    zip_norm = normalize_zip(row.zip_code.strip())
    shown_zip = zip_norm or row.zip_code.strip()
    address = ", ".join(
        p for p in (titled(line1), titled(row.city.strip()), f"{state} {shown_zip}".strip()) if p
    )
    country = row.country.strip().upper()
    if country and country != "US":
        return None, "", address, f"practice address outside the US ({country[:3]})"
    if not line1:
        return None, "", address, "no practice address"
    if state not in US_STATES:
        return None, "", address, f"unknown state '{state[:3]}' in the practice address"
    if zip_norm is None:
        return None, "", address, f"ZIP '{row.zip_code.strip()[:12]}' is not a ZIP code"
    location = {
        "address_line1": _cut(titled(line1), 200),
        "address_line2": _cut(titled(row.address_line2), 200),
        "city": _cut(titled(row.city), 100),
        "state": state,
        "zip_code": zip_norm,
        "phone": _phone(row.phone),
        "fax": _phone(row.fax),
    }
    return location, address_key(line1, zip_norm), address, ""
