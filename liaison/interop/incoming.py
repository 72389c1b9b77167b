"""A referral as an intake channel describes it, before it meets the database.

HL7 v2, FHIR and file imports each turn their input into an `IncomingReferral`; the services
then create or update the referral from it through `referrals.services`, so every channel
applies the same rules.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

from liaison.directory.validators import normalize_phone, npi_check_digit_ok
from liaison.referrals.services import ReferrerInfo

ICD10_RE = re.compile(r"^[A-TV-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?$")


@dataclass
class ReferredTo:
    """Whom the sender meant the referral for: matched against our physicians and sites."""

    npi: str = ""
    first_name: str = ""
    last_name: str = ""
    place: str = ""

    def __bool__(self) -> bool:
        return any((self.npi, self.last_name, self.place))


@dataclass
class IncomingReferral:
    patient_first_name: str = ""
    patient_last_name: str = ""
    patient_dob: dt.date | None = None
    patient_phone: str = ""
    patient_mrn: str = ""
    patient_zip: str = ""
    member_id: str = ""
    payer: str = ""
    reason: str = ""
    icd10_codes: str = ""
    urgency: str = ""  # blank: the sender said nothing (routine for a new referral)
    channel: str = "hl7"
    referrer: ReferrerInfo = field(default_factory=ReferrerInfo)
    referred_to: ReferredTo = field(default_factory=ReferredTo)
    source_system: str = ""
    external_ids: list[str] = field(default_factory=list)
    received_at: dt.datetime | None = None
    # What was left out and why (never a patient value): shown in the ACK / message log.
    warnings: list[str] = field(default_factory=list)

    def referral_fields(self) -> dict[str, Any]:
        """The Referral fields of a new referral from this description (blank ones included)."""
        return {
            "patient_first_name": self.patient_first_name,
            "patient_last_name": self.patient_last_name,
            "patient_dob": self.patient_dob,
            "patient_phone": self.patient_phone,
            "patient_mrn": self.patient_mrn,
            "patient_zip": self.patient_zip,
            "member_id": self.member_id,
            "payer": self.payer[:100],
            "reason": self.reason,
            "icd10_codes": self.icd10_codes,
            "urgency": self.urgency or "routine",
        }

    def corrections(self) -> dict[str, Any]:
        """What an update from the same sender changes: only what it says (a blank field, or a
        priority it does not give, leaves what we have, e.g. a coordinator's urgency)."""
        fields = self.referral_fields()
        if not self.urgency:
            del fields["urgency"]
        return {k: v for k, v in fields.items() if v not in ("", None)}

    def missing(self) -> list[str]:
        """The patient fields a referral cannot do without."""
        out = []
        if not self.patient_last_name.strip():
            out.append("patient family name")
        if not self.patient_first_name.strip():
            out.append("patient given name")
        if self.patient_dob is None:
            out.append("patient date of birth")
        return out


def clean_phone(value: str, what: str, warnings: list[str]) -> str:
    """A US phone number, or "" with a warning (a bad number never costs the referral)."""
    if not value:
        return ""
    try:
        return normalize_phone(value)
    except ValidationError:
        warnings.append(f"{what} is not a 10-digit US number: left out")
        return ""


def clean_icd10(codes: list[str], warnings: list[str]) -> str:
    out: list[str] = []
    for code in codes:
        code = code.strip().upper()
        if not code:
            continue
        if not ICD10_RE.match(code):
            warnings.append("a diagnosis code is not ICD-10: left out")
            continue
        if len(code) > 3 and "." not in code:
            code = f"{code[:3]}.{code[3:]}"
        if code not in out:
            out.append(code)
    return ", ".join(out)


def looks_like_npi(value: str) -> bool:
    value = (value or "").strip()
    return len(value) == 10 and value.isdigit() and value[0] in "12" and npi_check_digit_ok(value)


def zip5(value: str) -> str:
    digits = re.sub(r"\D", "", value or "")
    return digits[:5] if len(digits) >= 5 else ""
