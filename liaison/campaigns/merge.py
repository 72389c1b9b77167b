"""Merge fields: the only values a template can put in a message.

A template says `{{ recipient.first_name }}`. The names are an explicit allow-list of non-patient
fields (`MERGE_FIELDS`); the values come from `person_values` (the directory person and their
office), `campaign_values` (our organisation, our physician, the event, the quiz) and
`link_values` (the recipient's own links). Nothing else can be reached: this is not Django's
template language, there is no attribute lookup, no tag, no filter, and a template that names
anything outside the list is refused when it is saved. Referrals are never read here.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping

from django.core.exceptions import ValidationError

MERGE_FIELDS: dict[str, str] = {
    "recipient.first_name": "first name",
    "recipient.last_name": "last name",
    "recipient.name": "full name, with the credential for a provider",
    "recipient.salutation": "'Dr. Family' for a physician, else the first name",
    "recipient.title": "job title (staff) or credential (provider)",
    "practice.name": "the office's practice",
    "practice.city": "the office's city",
    "liaison.name": "the office's liaison (the account owner; else whoever sends)",
    "liaison.email": "the liaison's email address",
    "physician.name": "our physician chosen on the campaign",
    "physician.specialty": "our physician's specialty",
    "organisation.name": "our organisation",
    "event.name": "the event's title (event invitations)",
    "event.when": "date and time of the event",
    "event.where": "where the event is",
    "quiz.closes": "when the quiz closes",
    "quiz.prize": "the quiz prize",
    "links.unsubscribe": "the recipient's unsubscribe link (also added to every footer)",
    "links.quiz": "the recipient's quiz link (quizzes)",
    "links.rsvp": "the recipient's RSVP page (event invitations)",
}
PERSON_FIELDS = tuple(k for k in MERGE_FIELDS if k.split(".")[0] in ("recipient", "practice", "liaison"))
LINK_FIELDS = tuple(k for k in MERGE_FIELDS if k.startswith("links."))

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_TAG = re.compile(r"\{%|%\}|\{#")
_PATIENTISH = re.compile(r"patient|referral|dob|birth|mrn|diagnos|icd|member_id|reason|insur", re.I)


def fields_used(text: str) -> list[str]:
    return list(dict.fromkeys(m.group(1) for m in _PLACEHOLDER.finditer(text or "")))


def check_text(text: str, field: str) -> None:
    """A ValidationError on `field` for any merge field outside the allow-list (or a template tag)."""
    errors = []
    if _TAG.search(text or ""):
        errors.append(
            "Template tags ({% … %}, {# … #}) are not allowed: use merge fields like {{ recipient.first_name }}."
        )
    for name in fields_used(text):
        if name in MERGE_FIELDS:
            continue
        if _PATIENTISH.search(name):
            errors.append(f"{{{{ {name} }}}}: patient and referral data can never be merged into a campaign.")
        else:
            errors.append(f"Unknown merge field {{{{ {name} }}}}. Use one of: {', '.join(MERGE_FIELDS)}.")
    if errors:
        raise ValidationError({field: errors})


class MergeError(Exception):
    """A value outside the allow-list was asked for (a template that bypassed the checks)."""


def render(text: str, values: Mapping[str, str], *, escape: bool) -> str:
    """Replace each {{ field }} with its value (HTML-escaped when `escape`)."""

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in MERGE_FIELDS:
            raise MergeError(f"merge field {name!r} is not allowed")
        value = str(values.get(name, "") or "")
        return html.escape(value) if escape else value

    return _PLACEHOLDER.sub(replace, text or "")


def only_allowed(values: Mapping[str, object]) -> dict[str, str]:
    """The allow-listed subset, as strings: what may be stored on a recipient or a campaign."""
    return {k: str(v) for k, v in values.items() if k in MERGE_FIELDS and v not in (None, "")}
