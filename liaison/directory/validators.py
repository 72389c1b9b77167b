"""Field rules of the directory: NPI check digit, ZIP codes, NUCC taxonomy codes, phone numbers."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

NPI_RE = re.compile(r"^[12][0-9]{9}\Z")  # ASCII digits only, and no newline after them
TAXONOMY_RE = re.compile(r"^[0-9]{3}[0-9A-Z]{6}X$")


def npi_check_digit_ok(npi: str) -> bool:
    """The NPI check digit is the Luhn digit of the number prefixed with 80840 (ISO 7812 card issuer)."""
    digits = [int(c) for c in "80840" + npi]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def validate_npi(value: str) -> None:
    if not NPI_RE.match(value or ""):
        raise ValidationError(
            "An NPI is 10 digits starting with 1 or 2 (you entered %(value)s).",
            code="npi_format",
            params={"value": value},
        )
    if not npi_check_digit_ok(value):
        raise ValidationError(
            "%(value)s is not a valid NPI: its check digit is wrong (a typo?).",
            code="npi_check_digit",
            params={"value": value},
        )


def validate_taxonomy_code_format(value: str) -> None:
    if not TAXONOMY_RE.match(value or ""):
        raise ValidationError(
            "%(value)s is not a NUCC taxonomy code (10 characters ending in X, e.g. 207Q00000X).",
            code="taxonomy_format",
            params={"value": value},
        )


_EXTENSION = re.compile(r"(?i)\s*(?:ext\.?|x)\s*(\d*)\s*$")


def normalize_phone(value: str) -> str:
    """US numbers as (614) 555-0100, keeping an extension ("x123"). Raises ValidationError otherwise."""
    value = (value or "").strip()
    if not value:
        return ""
    ext = ""
    if m := _EXTENSION.search(value):
        ext, value = m.group(1), value[: m.start()]
        if not ext:
            raise ValidationError("The extension after 'x' or 'ext' must be digits.", code="phone")
    digits = re.sub(r"\D", "", value)
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    if len(digits) != 10:
        raise ValidationError("Enter a 10-digit US phone number, e.g. (614) 555-0100.", code="phone")
    formatted = f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
    return f"{formatted} x{ext}" if ext else formatted
