"""Keep patient identifiers out of feedback text.

Issues and survey comments are read by liaisons, who must not see patient data. The forms say
so; this validator is the safety net for the obvious cases (a date of birth, a medical record
number, a Social Security number). It cannot catch a bare name, so the form's notice matters.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

_PATTERNS = [
    (re.compile(r"\b(?:DOB|D\.O\.B\.?|date\s+of\s+birth|born\s+on)\b", re.IGNORECASE), "a date of birth"),
    (
        re.compile(r"\b(?:MRN|medical\s+record\s+(?:number|no\.?|#))\b", re.IGNORECASE),
        "a medical record number",
    ),
    (re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), "a Social Security number"),
    (re.compile(r"\b(?:SSN|social\s+security)\b", re.IGNORECASE), "a Social Security number"),
    (
        re.compile(r"\b(?:member|subscriber|policy)\s*(?:id|#|number)\s*[:#]?\s*\w*\d", re.IGNORECASE),
        "an insurance ID",
    ),
]

NOTICE = (
    "Do not enter patient names or identifiers (date of birth, record number, insurance ID): "
    "liaisons read this. Describe the problem; the referral it concerns is found by the coordinator."
)


def no_patient_identifiers(value: str) -> None:
    for pattern, what in _PATTERNS:
        if pattern.search(value or ""):
            raise ValidationError(
                f"This looks like it contains {what}. Remove patient identifiers: liaisons read this text.",
                code="patient_identifier",
            )
