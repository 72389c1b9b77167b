"""Writes to the directory. Pages, the API, importers and tests all come through here."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from liaison.core.services import save_with_audit
from liaison.directory.models import Contact, Location, Practice, Provider, Taxonomy
from liaison.directory.validators import TAXONOMY_RE

UNKNOWN_TAXONOMY_HINT = "Import the full NUCC list with `liaison import taxonomy FILE` if it is a new code."


def resolve_taxonomies(codes: Iterable[str], field: str) -> list[Taxonomy]:
    """Taxonomy rows for codes, or a ValidationError on `field` naming each unknown or malformed code."""
    codes = [c.strip().upper() for c in codes if c and c.strip()]
    found = {t.code: t for t in Taxonomy.objects.filter(code__in=codes)}
    errors = []
    for code in codes:
        if code in found:
            continue
        if not TAXONOMY_RE.match(code):
            errors.append(f"{code} is not a NUCC taxonomy code (10 characters ending in X, e.g. 207Q00000X).")
        else:
            errors.append(f"Unknown taxonomy code {code}. {UNKNOWN_TAXONOMY_HINT}")
    if errors:
        raise ValidationError({field: errors})
    return [found[c] for c in dict.fromkeys(codes)]


def create_practice(*, actor: Any, **data: Any) -> Practice:
    return save_with_audit(Practice(), data, actor=actor)


def update_practice(practice: Practice, *, actor: Any, **data: Any) -> Practice:
    return save_with_audit(practice, data, actor=actor)


def create_location(practice: Practice, *, actor: Any, **data: Any) -> Location:
    return save_with_audit(Location(practice=practice), data, actor=actor)


def update_location(location: Location, *, actor: Any, **data: Any) -> Location:
    return save_with_audit(location, data, actor=actor)


def _provider_relations(
    provider: Provider,
    data: dict[str, Any],
    locations: Iterable[Location] | None,
    secondary_taxonomy_codes: Iterable[str] | None,
) -> dict[str, list]:
    """Turn taxonomy codes into rows and check location links; collects every error at once."""
    errors: dict[str, list[str]] = {}
    m2m: dict[str, list] = {}
    code = data.pop("primary_taxonomy_code", None)
    if code is not None:
        try:
            data["primary_taxonomy"] = (
                resolve_taxonomies([code], "primary_taxonomy")[0] if code.strip() else None
            )
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if secondary_taxonomy_codes is not None:
        try:
            m2m["secondary_taxonomies"] = resolve_taxonomies(secondary_taxonomy_codes, "secondary_taxonomies")
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if locations is not None:
        locations = list(locations)
        is_ours = data.get("is_ours", provider.is_ours)
        if is_ours and any(not loc.practice.is_ours for loc in locations):
            errors["locations"] = ["Our physicians practise at our sites: pick one of our locations."]
        m2m["locations"] = locations
    if errors:
        raise ValidationError(errors)
    return m2m


def create_provider(
    *,
    actor: Any,
    locations: Iterable[Location] | None = None,
    secondary_taxonomy_codes: Iterable[str] | None = None,
    **data: Any,
) -> Provider:
    """`primary_taxonomy_code` may be given instead of `primary_taxonomy`."""
    provider = Provider()
    m2m = _provider_relations(provider, data, locations, secondary_taxonomy_codes)
    _consent_stamp(provider, data)
    return save_with_audit(provider, data, actor=actor, m2m=m2m)


def update_provider(
    provider: Provider,
    *,
    actor: Any,
    locations: Iterable[Location] | None = None,
    secondary_taxonomy_codes: Iterable[str] | None = None,
    **data: Any,
) -> Provider:
    m2m = _provider_relations(provider, data, locations, secondary_taxonomy_codes)
    _consent_stamp(provider, data)
    return save_with_audit(provider, data, actor=actor, m2m=m2m)


def _consent_stamp(person: Contact | Provider, data: dict[str, Any]) -> None:
    if "email_consent" in data and bool(data["email_consent"]) != person.email_consent:
        data["email_consent_at"] = timezone.now() if data["email_consent"] else None


def create_contact(practice: Practice, *, actor: Any, **data: Any) -> Contact:
    contact = Contact(practice=practice)
    _consent_stamp(contact, data)
    return save_with_audit(contact, data, actor=actor)


def update_contact(contact: Contact, *, actor: Any, **data: Any) -> Contact:
    _consent_stamp(contact, data)
    return save_with_audit(contact, data, actor=actor)


@transaction.atomic
def create_practice_with_location(
    *, actor: Any, practice: dict[str, Any], location: dict[str, Any]
) -> tuple[Practice, Location]:
    """A new practice and its first office in one step (both valid, or neither saved)."""
    errors: dict[str, list[str]] = {}
    new_practice = Practice(**practice)
    new_location = Location(practice=new_practice, **location)
    for obj, prefix in ((new_practice, ""), (new_location, "location.")):
        try:
            obj.full_clean(exclude=["practice"] if obj is new_location else None)
        except ValidationError as exc:
            for field, msgs in exc.message_dict.items():
                errors.setdefault(prefix + field, []).extend(msgs)
    if errors:
        raise ValidationError(errors)
    p = create_practice(actor=actor, **practice)
    loc = create_location(p, actor=actor, **location)
    return p, loc
