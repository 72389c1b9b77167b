"""Evaluating a segment: who in the directory it means today.

An office (a location of a referring practice) is in when it passes the office criteria:
territory (its ZIP code, or failing that its county, as `outreach.services.territory_for_location`
decides), and, through the office's account (its own account, else its practice's), tier, stage
and last touch (the latest completed activity of that account). Then its people are in when they
pass the person criteria: who they are (physicians, mid-levels and other clinicians from their
taxonomy; office staff by their directory role), specialty (a provider's own; for staff, any
provider of their practice) and email consent. Staff without an office of their own belong to
every office of their practice. Inactive people, practices and offices, and our own
organisation, are never in. Everything is done in a fixed number of queries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db.models import Exists, F, Max, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, Replace, Substr, Upper
from django.utils import timezone

from liaison.campaigns.models import PROVIDER_AUDIENCES, Audience, Consent, Segment
from liaison.directory.models import MID_LEVEL_GROUPINGS, Contact, Location, Provider
from liaison.outreach.ledger import (
    STARK_PHYSICIAN_CLASSIFICATIONS,
    STARK_PHYSICIAN_CREDENTIALS,
    STARK_PHYSICIAN_GROUPINGS,
)
from liaison.outreach.models import Account, Activity, ActivityStatus, Stage, Territory, Tier

_MID_LEVEL_CREDENTIALS = ("NP", "PA", "PAC", "APRN", "CRNP", "FNP", "CNM", "CNS", "DNP")


@dataclass
class Member:
    """One person a segment means, with the office they are reached at."""

    kind: str  # "contact" or "provider"
    pk: int
    first_name: str
    last_name: str
    name: str
    title: str
    audience: str
    email: str
    consent: bool
    is_physician: bool
    practice_id: int
    practice_name: str
    practice_city: str
    location_id: int | None
    account_id: int | None
    liaison_name: str = ""
    liaison_email: str = ""

    @property
    def key(self) -> str:
        return f"{self.kind}-{self.pk}"

    @property
    def salutation(self) -> str:
        return f"Dr. {self.last_name}" if self.is_physician and self.last_name else self.first_name


def _credential_q(credentials: Iterable[str]) -> Q:
    words = "|".join(credentials)
    return Q(_cred__regex=rf"(^|[^A-Z])({words})([^A-Z]|$)")


def _physician_q() -> Q:
    return (
        Q(primary_taxonomy__grouping__in=STARK_PHYSICIAN_GROUPINGS)
        | Q(primary_taxonomy__classification__in=STARK_PHYSICIAN_CLASSIFICATIONS)
        | (Q(primary_taxonomy__isnull=True) & _credential_q(STARK_PHYSICIAN_CREDENTIALS))
    )


def _mid_level_q() -> Q:
    return Q(primary_taxonomy__grouping__in=MID_LEVEL_GROUPINGS) | (
        Q(primary_taxonomy__isnull=True) & _credential_q(_MID_LEVEL_CREDENTIALS)
    )


def _territory_q(ids: list[int]) -> Q:
    found = {t.pk: t for t in Territory.objects.all()}
    missing = [i for i in ids if i not in found]
    if missing:
        raise ValidationError(
            {"territories": ["A territory of this segment no longer exists: edit the segment."]}
        )
    every_zip = {z for t in found.values() for z in t.zip_codes}
    q = Q(pk__in=[])
    for t in (found[i] for i in ids):
        if t.zip_codes:
            q |= Q(_zip5__in=t.zip_codes)
        for county in t.counties:
            name, _, state = county.rpartition(",")
            # A ZIP code match wins over a county match, so an office whose ZIP code is in any
            # territory belongs to that one only.
            q |= Q(county=name.strip(), state=state.strip()) & ~Q(_zip5__in=every_zip)
    return q


def offices(segment: Segment) -> QuerySet[Location]:
    """The referring offices the segment's office criteria keep, annotated with `_account`."""
    own_account = Account.objects.filter(location=OuterRef("pk")).values("pk")[:1]
    practice_account = Account.objects.filter(practice=OuterRef("practice_id"), location__isnull=True).values(
        "pk"
    )[:1]
    qs = (
        Location.objects.filter(practice__is_ours=False, practice__is_active=True, is_active=True)
        .annotate(_zip5=Substr("zip_code", 1, 5))
        .annotate(_account=Coalesce(Subquery(own_account), Subquery(practice_account)))
    )
    if segment.territories:
        qs = qs.filter(_territory_q(list(segment.territories)))
    accounts = Account.objects.all()
    needs_account = False
    if segment.tiers:
        known = set(Tier.objects.filter(code__in=segment.tiers).values_list("code", flat=True))
        if len(known) != len(set(segment.tiers)):
            raise ValidationError({"tiers": ["A tier of this segment no longer exists: edit the segment."]})
        accounts, needs_account = accounts.filter(tier__code__in=segment.tiers), True
    if segment.stages:
        accounts, needs_account = accounts.filter(stage__in=segment.stages), True
    now = timezone.now()
    if segment.touched_within_days is not None or segment.untouched_days is not None:
        last = (
            Activity.objects.filter(account=OuterRef("pk"), status=ActivityStatus.COMPLETED)
            .values("account")
            .annotate(m=Max("occurred_at"))
            .values("m")[:1]
        )
        accounts = accounts.annotate(_last=Subquery(last))
        if segment.touched_within_days is not None:
            accounts = accounts.filter(_last__gte=now - timedelta(days=segment.touched_within_days))
            needs_account = True
        if segment.untouched_days is not None:
            accounts = accounts.filter(
                Q(_last__isnull=True) | Q(_last__lt=now - timedelta(days=segment.untouched_days))
            )
    if needs_account:
        qs = qs.filter(_account__in=accounts.values("pk"))
    elif segment.untouched_days is not None:
        # An office never in the pipeline has never been touched either.
        qs = qs.filter(Q(_account__isnull=True) | Q(_account__in=accounts.values("pk")))
    return qs


def _specialty_providers(codes: list[str]) -> QuerySet[Provider]:
    return Provider.objects.filter(Q(primary_taxonomy__in=codes) | Q(secondary_taxonomies__in=codes))


def _contacts(segment: Segment, office_qs: QuerySet[Location]) -> list[dict]:
    audiences = set(segment.audiences or [])
    staff_roles = [a for a in audiences if a not in PROVIDER_AUDIENCES]
    if audiences and not staff_roles:
        return []
    office_ids = office_qs.values("pk")
    qs = Contact.objects.filter(is_active=True, practice__is_ours=False, practice__is_active=True).filter(
        Q(location_id__in=office_ids)
        | Q(location__isnull=True) & Exists(office_qs.filter(practice_id=OuterRef("practice_id")))
    )
    if staff_roles:
        qs = qs.filter(role__in=staff_roles)
    if segment.specialties:
        qs = qs.filter(
            Exists(
                _specialty_providers(segment.specialties).filter(
                    locations__practice_id=OuterRef("practice_id"), is_ours=False
                )
            )
        )
    if segment.consent == Consent.EMAIL:
        qs = qs.filter(email_consent=True)
    elif segment.consent == Consent.NO_EMAIL:
        qs = qs.filter(email_consent=False)
    return list(
        qs.order_by("practice__name", "last_name", "first_name", "pk").values(
            "pk",
            "first_name",
            "last_name",
            "title",
            "role",
            "email",
            "email_consent",
            "practice_id",
            "location_id",
            practice_name=F("practice__name"),
        )
    )


def _providers(segment: Segment, office_qs: QuerySet[Location]) -> list[dict]:
    audiences = set(segment.audiences or [])
    kinds = audiences & PROVIDER_AUDIENCES
    if audiences and not kinds:
        return []
    links = Provider.locations.through.objects.filter(
        provider_id=OuterRef("pk"), location_id__in=office_qs.values("pk")
    )
    qs = (
        Provider.objects.filter(is_ours=False, status=Provider.Status.ACTIVE)
        .filter(Exists(links))
        .annotate(_cred=Upper(Replace(Replace("credential", Value("."), Value("")), Value("-"), Value(""))))
    )
    physician, mid_level = _physician_q(), _mid_level_q()
    if kinds and kinds != PROVIDER_AUDIENCES:
        q = Q(pk__in=[])
        if Audience.PHYSICIAN in kinds:
            q |= physician
        if Audience.MID_LEVEL in kinds:
            q |= mid_level & ~physician
        if Audience.OTHER_CLINICIAN in kinds:
            q |= ~physician & ~mid_level
        qs = qs.filter(q)
    if segment.specialties:
        qs = qs.filter(pk__in=_specialty_providers(segment.specialties).values("pk"))
    if segment.consent == Consent.EMAIL:
        qs = qs.filter(email_consent=True)
    elif segment.consent == Consent.NO_EMAIL:
        qs = qs.filter(email_consent=False)
    rows = list(
        qs.order_by("last_name", "first_name", "pk").values(
            "pk", "first_name", "last_name", "credential", "email", "email_consent"
        )
    )
    physicians = set(qs.filter(physician).values_list("pk", flat=True)) if rows else set()
    mid_levels = set(qs.filter(mid_level).values_list("pk", flat=True)) if rows else set()
    for r in rows:
        r["kind"] = (
            Audience.PHYSICIAN
            if r["pk"] in physicians
            else Audience.MID_LEVEL
            if r["pk"] in mid_levels
            else Audience.OTHER_CLINICIAN
        )
    return rows


def evaluate(segment: Segment) -> list[Member]:
    """Everyone the segment means now (office staff first, then providers), each once."""
    office_qs = offices(segment)
    office_rows = {
        r["pk"]: r
        for r in office_qs.values(
            "pk", "practice_id", "city", "_account", practice_name=F("practice__name")
        ).order_by("pk")
    }
    first_office: dict[int, int] = {}
    for pk, r in office_rows.items():
        first_office.setdefault(r["practice_id"], pk)
    contacts = _contacts(segment, office_qs)
    providers = _providers(segment, office_qs)
    provider_office: dict[int, int] = {}
    if providers:
        for provider_id, location_id in (
            Provider.locations.through.objects.filter(
                provider_id__in=[p["pk"] for p in providers], location_id__in=list(office_rows)
            )
            .order_by("location_id")
            .values_list("provider_id", "location_id")
        ):
            provider_office.setdefault(provider_id, location_id)
    account_ids = {r["_account"] for r in office_rows.values() if r["_account"]}
    owners = {
        a["pk"]: a
        for a in Account.objects.filter(pk__in=account_ids).values(
            "pk", owner_name=F("owner__full_name"), owner_email=F("owner__email")
        )
    }
    labels = dict(Audience.choices)
    members: list[Member] = []

    def office_of(location_id: int | None, practice_id: int) -> dict | None:
        if location_id in office_rows:
            return office_rows[location_id]
        return office_rows.get(first_office.get(practice_id))

    for c in contacts:
        office = office_of(c["location_id"], c["practice_id"])
        if office is None:
            continue
        owner = owners.get(office["_account"], {})
        members.append(
            Member(
                kind="contact",
                pk=c["pk"],
                first_name=c["first_name"],
                last_name=c["last_name"],
                name=f"{c['first_name']} {c['last_name']}".strip(),
                title=c["title"] or labels.get(c["role"], ""),
                audience=labels.get(c["role"], ""),
                email=(c["email"] or "").strip().lower(),
                consent=c["email_consent"],
                is_physician=False,
                practice_id=c["practice_id"],
                practice_name=c["practice_name"],
                practice_city=office["city"],
                location_id=office["pk"],
                account_id=office["_account"],
                liaison_name=owner.get("owner_name") or "",
                liaison_email=owner.get("owner_email") or "",
            )
        )
    for p in providers:
        office = office_rows.get(provider_office.get(p["pk"]))
        if office is None:
            continue
        owner = owners.get(office["_account"], {})
        name = f"{p['first_name']} {p['last_name']}".strip()
        members.append(
            Member(
                kind="provider",
                pk=p["pk"],
                first_name=p["first_name"],
                last_name=p["last_name"],
                name=f"{name}, {p['credential']}" if p["credential"] else name,
                title=p["credential"],
                audience=labels[p["kind"]],
                email=(p["email"] or "").strip().lower(),
                consent=p["email_consent"],
                is_physician=p["kind"] == Audience.PHYSICIAN,
                practice_id=office["practice_id"],
                practice_name=office["practice_name"],
                practice_city=office["city"],
                location_id=office["pk"],
                account_id=office["_account"],
                liaison_name=owner.get("owner_name") or "",
                liaison_email=owner.get("owner_email") or "",
            )
        )
    return members


def describe(segment: Segment) -> list[str]:
    """The criteria in words, for lists and the campaign page."""
    out = []
    labels = dict(Audience.choices)
    if segment.audiences:
        out.append(", ".join(labels.get(a, a) for a in segment.audiences))
    else:
        out.append("Everyone in the offices")
    if segment.territories:
        names = dict(Territory.objects.filter(pk__in=segment.territories).values_list("pk", "name"))
        out.append("in " + ", ".join(names.get(i, "(deleted territory)") for i in segment.territories))
    if segment.tiers:
        out.append("tier " + ", ".join(segment.tiers))
    if segment.stages:
        stage_labels = dict(Stage.choices)
        out.append("stage " + ", ".join(stage_labels.get(s, s) for s in segment.stages))
    if segment.specialties:
        out.append("specialty " + ", ".join(segment.specialties))
    if segment.touched_within_days is not None:
        out.append(f"touched in the last {segment.touched_within_days} days")
    if segment.untouched_days is not None:
        out.append(f"not touched for {segment.untouched_days} days")
    if segment.consent:
        out.append(dict(Consent.choices)[segment.consent].lower())
    return out
