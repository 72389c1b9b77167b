"""Refer back: suggest partners for one of our patients, record the outbound referral, and keep
a reciprocity balance (referrals in vs out) per partner practice."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from liaison.audit.services import record
from liaison.core.geo import zip_info
from liaison.directory.models import Location, Practice, Provider, Taxonomy
from liaison.directory.selectors import specialty_q
from liaison.referrals.models import EventKind, OutboundReferral, Referral, ReferralEvent

RELATIONSHIP_DAYS = 365


@dataclass
class Suggestion:
    provider: Provider
    location: Location | None
    distance_miles: float | None
    referrals_to_us: int
    why: str


def suggest_partners(
    specialty: str, patient_zip: str = "", radius_miles: float = 25, limit: int = 10
) -> list[Suggestion]:
    """Referring providers of the specialty, those who refer to us first, then the nearest."""
    from liaison.core.geo import haversine_miles

    if not specialty.strip():
        raise ValidationError({"specialty": ["Which specialty does the patient need?"]})
    since = timezone.now() - dt.timedelta(days=RELATIONSHIP_DAYS)
    providers = (
        Provider.objects.referring()
        .filter(status=Provider.Status.ACTIVE)
        .filter(specialty_q(specialty, ""))
        .distinct()
        .annotate(
            sent=Count("referrals_sent", filter=Q(referrals_sent__received_at__gte=since), distinct=True)
        )
        .prefetch_related("locations__practice")
    )
    origin = zip_info(patient_zip) if patient_zip else None
    out = []
    for provider in providers[:500]:
        best, best_miles = None, None
        for loc in provider.locations.all():
            if origin is None or loc.latitude is None:
                best = best or loc
                continue
            miles = haversine_miles(origin.latitude, origin.longitude, loc.latitude, loc.longitude)
            if best_miles is None or miles < best_miles:
                best, best_miles = loc, miles
        if origin is not None and (best_miles is None or best_miles > radius_miles):
            continue
        parts = [
            f"referred {provider.sent} patient{'s' if provider.sent != 1 else ''} to us in the last 12 months"
            if provider.sent
            else "no referral to us yet"
        ]
        if best_miles is not None:
            parts.append(f"{best_miles:.1f} miles from the patient")
        out.append(Suggestion(provider, best, best_miles, provider.sent, "; ".join(parts)))
    out.sort(
        key=lambda s: (
            -s.referrals_to_us,
            s.distance_miles if s.distance_miles is not None else 9e9,
            s.provider.last_name,
        )
    )
    return out[:limit]


@transaction.atomic
def refer_out(
    *,
    actor: Any,
    to_provider: Provider,
    referral: Referral | None = None,
    specialty_code: str = "",
    reason: str = "",
    urgency: str = "routine",
    patient: dict[str, Any] | None = None,
) -> OutboundReferral:
    if referral is None and not (patient or {}).get("patient_last_name"):
        raise ValidationError({"patient": ["Name the patient, or start from their referral."]})
    if to_provider.is_ours:
        raise ValidationError({"to_provider": ["Refer out to a partner, not to one of our physicians."]})
    specialty = (
        Taxonomy.objects.filter(code=specialty_code).first()
        if specialty_code
        else to_provider.primary_taxonomy
    )
    outbound = OutboundReferral.objects.create(
        referral=referral,
        to_provider=to_provider,
        to_location=to_provider.locations.first(),
        specialty=specialty,
        reason=reason,
        urgency=urgency,
        created_by=actor if getattr(actor, "pk", None) else None,
        **(patient or {}),
    )
    if referral is not None:
        ReferralEvent.objects.create(
            referral=referral,
            kind=EventKind.NOTE,
            actor=actor if getattr(actor, "pk", None) else None,
            actor_label=getattr(actor, "email", str(actor)),
            note=f"Referred out to {to_provider.display_name}",
            data={"outbound": outbound.pk},
        )
    record(
        actor,
        "create",
        outbound,
        phi=True,
        changes={"to_provider": to_provider.pk, "referral": getattr(referral, "pk", None)},
    )
    return outbound


def reciprocity(since_days: int = 365) -> list[dict[str, Any]]:
    """Per partner practice: referrals they sent us and we sent them (counts only, no patient data)."""
    since = timezone.now() - dt.timedelta(days=since_days)
    practices = (
        Practice.objects.referring()
        .annotate(
            received=Count(
                "locations__referrals_sent",
                filter=Q(locations__referrals_sent__received_at__gte=since),
                distinct=True,
            ),
            sent=Count(
                "locations__referrals_from_us",
                filter=Q(locations__referrals_from_us__sent_at__gte=since),
                distinct=True,
            ),
        )
        .filter(Q(received__gt=0) | Q(sent__gt=0))
        .order_by("-received", "name")
    )
    return [
        {"practice": p, "received": p.received, "sent": p.sent, "balance": p.received - p.sent}
        for p in practices
    ]
