"""Writes of outreach. Pages, the API, the demo generator, the jobs and other domains call these.

Hooks for other domains (docs/outreach.md, "Hooks"):
- referrals: `record_first_referral(practice, when=..., actor=...)` on each referral received;
- market data (Opportunities flag): `add_to_pipeline(practice, actor=..., source="market_data", note=...)`;
- analytics: `mark_at_risk` / `clear_at_risk` and `set_referral_trend`.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from liaison.accounts.models import Role, User
from liaison.audit.services import record, snapshot
from liaison.core.geo import normalize_zip, zip_info
from liaison.core.services import audited_fields, save_with_audit
from liaison.directory import services as directory
from liaison.directory.models import Contact, ContactRole, Location, Practice, Provider
from liaison.feedback.validators import no_patient_identifiers
from liaison.outreach import ledger
from liaison.outreach.models import (
    PROSPECT_STAGES,
    TOUCH_KINDS,
    Account,
    AccountSource,
    AccountStageChange,
    Activity,
    ActivityKind,
    ActivityStatus,
    Attendee,
    CadenceRule,
    CalendarFeed,
    CollateralItem,
    CompensationLimit,
    LedgerEntry,
    MaterialLeft,
    Stage,
    Task,
    TaskKind,
    TaskStatus,
    Territory,
    Tier,
    Trend,
)

_UNSET: Any = object()
ASSIGNEE_ROLES = (Role.LIAISON, Role.COORDINATOR, Role.PHYSICIAN, Role.MANAGER)
# An activity logged up to this far in the future is still "done" (clock skew, logging ahead).
_GRACE = timedelta(minutes=30)


def _user(actor: Any) -> User | None:
    return actor if getattr(actor, "pk", None) and isinstance(actor, User) else None


def _label(actor: Any) -> str:
    user = _user(actor)
    return (user.email if user else str(actor or "system"))[:254]


def _refuse_patient_identifiers(**texts: str) -> None:
    """Free text a liaison reads (and that may reach a phone's calendar) never holds patient
    identifiers: every field's complaint at once, before anything is written. The model fields
    carry the same validator; this covers texts stored outside them (a stage change's reason,
    a follow-up named by the API)."""
    errors: dict[str, list[str]] = {}
    for name, value in texts.items():
        try:
            no_patient_identifiers(value or "")
        except ValidationError as exc:
            errors[name] = exc.messages
    if errors:
        raise ValidationError(errors)


# Pipeline -------------------------------------------------------------------------------------


def _set_stage(account: Account, to: str, *, actor: Any, reason: str, at: datetime | None = None) -> bool:
    """Write the history row and move the account; False when it is already there."""
    if account.stage == to:
        return False
    # A backdated touch never puts a change before the last one: the history stays in order.
    at = max(at or timezone.now(), account.stage_changed_at)
    AccountStageChange.objects.create(
        account=account,
        from_stage=account.stage,
        to_stage=to,
        at=at,
        actor=_user(actor),
        actor_label=_label(actor),
        reason=reason[:300],
    )
    record(actor, "stage", account, changes={"stage": [account.stage, to]})
    account.stage, account.stage_changed_at = to, at
    Account.objects.filter(pk=account.pk).update(stage=to, stage_changed_at=at)
    return True


def _territory_owner(location: Location | None, territories: list[Territory] | None = None) -> User | None:
    territory = territory_for_location(location, territories)
    return territory.liaison if territory is not None else None


def _main_location(practice: Practice) -> Location | None:
    return practice.locations.filter(is_active=True).select_related("practice").order_by("pk").first()


def find_account(practice: Practice, location: Location | None = None) -> Account | None:
    """The account of an office if it has its own, else the practice's."""
    if location is not None:
        found = Account.objects.filter(practice=practice, location=location).first()
        if found is not None:
            return found
    return Account.objects.filter(practice=practice, location__isnull=True).first()


@transaction.atomic
def add_to_pipeline(
    practice: Practice,
    *,
    actor: Any,
    source: str = AccountSource.DIRECTORY,
    note: str = "",
    location: Location | None = None,
    owner: User | None = None,
    tier: Tier | None = None,
    potential: str = "",
    at: datetime | None = None,
) -> Account:
    """Make a practice (or one office) an account at stage "target". Idempotent: an account
    that exists is returned unchanged. The owner defaults to the territory's liaison.
    `at` backdates the start of its history (imports, demo data)."""
    _refuse_patient_identifiers(note=note, potential=potential)
    existing = Account.objects.filter(practice=practice, location=location).first()
    if existing is not None:
        return existing
    if owner is not None and not owner.has_role(Role.LIAISON, Role.MANAGER):
        raise ValidationError({"owner": ["An account is owned by a liaison (or a manager)."]})
    account = Account(practice=practice, location=location)
    data = {
        "source": source,
        "tier": tier,
        "potential": potential,
        "owner": owner or _territory_owner(location or _main_location(practice)),
        "owner_from_territory": owner is None,
        "stage_changed_at": at or timezone.now(),
    }
    account = save_with_audit(account, data, actor=actor)
    AccountStageChange.objects.create(
        account=account,
        from_stage="",
        to_stage=Stage.TARGET,
        at=account.stage_changed_at,
        actor=_user(actor),
        actor_label=_label(actor),
        reason=(note or f"added from {AccountSource(source).label.lower()}")[:300],
    )
    return account


@transaction.atomic
def update_account(
    account: Account,
    *,
    actor: Any,
    owner: User | None = _UNSET,
    follow_territory: bool | None = None,
    tier: Tier | None = _UNSET,
    potential: str = _UNSET,
) -> Account:
    """Change the owner (which stops following the territory), the tier or the potential note."""
    data: dict[str, Any] = {}
    if follow_territory:
        data["owner_from_territory"] = True
        data["owner"] = _territory_owner(account.location or _main_location(account.practice))
    elif owner is not _UNSET:
        if owner is not None and not owner.has_role(Role.LIAISON, Role.MANAGER):
            raise ValidationError({"owner": ["An account is owned by a liaison (or a manager)."]})
        data["owner"], data["owner_from_territory"] = owner, False
    if tier is not _UNSET:
        data["tier"] = tier
    if potential is not _UNSET:
        data["potential"] = potential
    return save_with_audit(account, data, actor=actor)


def change_stage(account: Account, stage: str, *, actor: Any, reason: str = "") -> Account:
    """A stage set by hand (the history row says who and why)."""
    if stage not in Stage.values:
        raise ValidationError({"stage": [f"Unknown stage {stage!r}."]})
    if stage in (Stage.AT_RISK, Stage.LAPSED) and not reason.strip():
        raise ValidationError({"reason": ["Say why this account is at risk or lapsed."]})
    _refuse_patient_identifiers(reason=reason)
    with transaction.atomic():
        account = Account.objects.select_for_update().get(pk=account.pk)
        _set_stage(account, stage, actor=actor, reason=reason or "set by hand")
    return account


def record_first_referral(
    practice: Practice, *, when: datetime, actor: Any, location: Location | None = None
) -> Account:
    """Hook for the referrals domain: call it for every referral received from a practice.

    The first referral stamps `first_referral_at` (and whether outreach came before it) and opens
    the "referring" stage of an account still in the prospect stages; a referral from a lapsed
    account reopens it. A practice not yet in the pipeline becomes an account at "referring".
    Later calls for an account already referring (or at risk: analytics decides that) change nothing.
    """
    with transaction.atomic():
        account = find_account(practice, location)
        if account is None:
            # Its history starts at that referral (an import of past referrals is not news today).
            account = add_to_pipeline(
                practice,
                actor=actor,
                source=AccountSource.REFERRAL,
                note="first referral",
                location=None,
                at=when,
            )
        account = Account.objects.select_for_update().get(pk=account.pk)
        if account.first_referral_at is None:
            after_outreach = Activity.objects.filter(
                account=account, status=ActivityStatus.COMPLETED, occurred_at__lte=when
            ).exists()
            account.first_referral_at, account.first_referral_after_outreach = when, after_outreach
            Account.objects.filter(pk=account.pk).update(
                first_referral_at=when, first_referral_after_outreach=after_outreach
            )
            record(actor, "first_referral", account, changes={"first_referral_at": [None, when]})
            reason = (
                "first referral after outreach" if after_outreach else "first referral (no outreach logged)"
            )
            if account.stage in PROSPECT_STAGES or account.stage == Stage.LAPSED:
                _set_stage(account, Stage.REFERRING, actor=actor, reason=reason, at=when)
        elif account.stage == Stage.LAPSED:
            _set_stage(account, Stage.REFERRING, actor=actor, reason="referring again after lapsing", at=when)
    return account


def mark_at_risk(account: Account, *, reason: str, actor: Any) -> Account:
    """Hook for analytics: the account is cooling off (or a person judged it so)."""
    with transaction.atomic():
        account = Account.objects.select_for_update().get(pk=account.pk)
        _set_stage(account, Stage.AT_RISK, actor=actor, reason=reason or "marked at risk")
    return account


def clear_at_risk(account: Account, *, reason: str, actor: Any) -> Account:
    """Back to the stage it had before it was marked at risk (referring, usually)."""
    with transaction.atomic():
        account = Account.objects.select_for_update().get(pk=account.pk)
        if account.stage != Stage.AT_RISK:
            return account
        before = (
            account.stage_changes.filter(to_stage=Stage.AT_RISK)
            .order_by("-at", "-pk")
            .values_list("from_stage", flat=True)
            .first()
        )
        _set_stage(account, before or Stage.REFERRING, actor=actor, reason=reason or "no longer at risk")
    return account


def set_referral_trend(account: Account, *, trend: str, actor: Any) -> Account:
    """Hook for analytics: rising / steady / cooling, shown on the map and the account page."""
    if trend not in Trend.values:
        raise ValidationError({"trend": [f"Unknown trend {trend!r}."]})
    if account.trend != trend:
        with transaction.atomic():
            record(actor, "trend", account, changes={"trend": [account.trend, trend]})
            Account.objects.filter(pk=account.pk).update(trend=trend)
            account.trend = trend
    return account


# Territories ----------------------------------------------------------------------------------

_COUNTY_SUFFIXES = ("County", "Parish", "Borough", "Census Area", "Municipality", "city", "City and Borough")


def normalize_county(value: str) -> str:
    """'franklin, oh' / 'Franklin County, OH' -> 'Franklin County, OH' (ValidationError if unknown)."""
    name, sep, state = value.rpartition(",")
    name, state = name.strip(), state.strip().upper()
    if not sep or not name or len(state) != 2:
        raise ValidationError(f"'{value}': write a county as 'Franklin County, OH'.")
    import zipcodes

    known = {z["county"].lower(): z["county"] for z in zipcodes.filter_by(state=state) if z.get("county")}
    for candidate in (name, *(f"{name} {s}" for s in _COUNTY_SUFFIXES)):
        if candidate.lower() in known:
            return f"{known[candidate.lower()]}, {state}"
    raise ValidationError(f"'{value}' is not a county of {state}.")


def _normalize_areas(zip_codes: Iterable[str], counties: Iterable[str]) -> tuple[list[str], list[str], dict]:
    errors: dict[str, list[str]] = {}
    zips: list[str] = []
    for z in zip_codes:
        z = z.strip()
        if not z:
            continue
        norm = normalize_zip(z)
        if norm is None or zip_info(norm) is None:
            errors.setdefault("zip_codes", []).append(f"{z} is not a known US ZIP code.")
        else:
            zips.append(norm[:5])
    county_list: list[str] = []
    for c in counties:
        if not c.strip():
            continue
        try:
            county_list.append(normalize_county(c))
        except ValidationError as exc:
            errors.setdefault("counties", []).extend(exc.messages)
    return sorted(set(zips)), sorted(set(county_list)), errors


@transaction.atomic
def save_territory(
    territory: Territory | None,
    *,
    actor: Any,
    name: str,
    liaison: User | None,
    zip_codes: Iterable[str] = (),
    counties: Iterable[str] = (),
) -> Territory:
    """Create or change a territory; a ZIP or county belongs to one territory only. Accounts
    that follow their territory get its liaison as owner."""
    zips, county_list, errors = _normalize_areas(zip_codes, counties)
    if liaison is not None and not liaison.has_role(Role.LIAISON):
        errors.setdefault("liaison", []).append("A territory is assigned to a liaison.")
    others = Territory.objects.exclude(pk=territory.pk if territory else None)
    for other in others:
        clash = sorted(set(zips) & set(other.zip_codes))
        if clash:
            errors.setdefault("zip_codes", []).append(f"{', '.join(clash)} already in {other.name}.")
        clash = sorted(set(county_list) & set(other.counties))
        if clash:
            errors.setdefault("counties", []).append(f"{'; '.join(clash)} already in {other.name}.")
    if errors:
        raise ValidationError(errors)
    territory = save_with_audit(
        territory or Territory(),
        {"name": name, "liaison": liaison, "zip_codes": zips, "counties": county_list},
        actor=actor,
    )
    apply_territories(actor=actor)
    return territory


@transaction.atomic
def delete_territory(territory: Territory, *, actor: Any) -> None:
    record(actor, "delete", territory)
    territory.delete()
    apply_territories(actor=actor)


def territory_for_location(
    location: Location | None, territories: list[Territory] | None = None
) -> Territory | None:
    """A ZIP code match wins over a county match."""
    if location is None:
        return None
    territories = list(Territory.objects.select_related("liaison")) if territories is None else territories
    zip5 = (location.zip_code or "")[:5]
    county = f"{location.county}, {location.state}" if location.county else ""
    for t in territories:
        if zip5 and zip5 in t.zip_codes:
            return t
    for t in territories:
        if county and county in t.counties:
            return t
    return None


def apply_territories(*, actor: Any) -> int:
    """Give every account that follows its territory the territory's liaison; returns how many changed."""
    territories = list(Territory.objects.select_related("liaison"))
    changed = 0
    accounts = Account.objects.filter(owner_from_territory=True).select_related("location", "practice")
    first_locations: dict[int, Location] = {}
    for loc in Location.objects.filter(practice__in=accounts.values("practice"), is_active=True).order_by(
        "-pk"
    ):
        first_locations[loc.practice_id] = loc
    for account in accounts:
        owner = _territory_owner(account.location or first_locations.get(account.practice_id), territories)
        if account.owner_id != (owner.pk if owner else None):
            record(
                actor, "update", account, changes={"owner": [account.owner_id, owner.pk if owner else None]}
            )
            Account.objects.filter(pk=account.pk).update(owner=owner)
            changed += 1
    return changed


# Tiers and cadence rules ------------------------------------------------------------------------


@transaction.atomic
def set_cadence_rules(tier: Tier, rules: Iterable[tuple[str, int, str]], *, actor: Any) -> Tier:
    """Replace a tier's rules: [(touch, every, unit)]."""
    from liaison.outreach.models import CadenceUnit

    before = sorted(str(r) for r in tier.rules.all())
    tier.rules.all().delete()
    for touch, every, unit in rules:
        if unit == CadenceUnit.MONTH and 12 % every:
            raise ValidationError(
                {
                    "every": [
                        f"Calendar months come in blocks that divide a year (1, 2, 3, 4, 6 or 12), not {every}."
                    ]
                }
            )
        if unit == CadenceUnit.QUARTER and 4 % every:
            raise ValidationError({"every": [f"Calendar quarters come in blocks of 1, 2 or 4, not {every}."]})
        rule = CadenceRule(tier=tier, touch=touch, every=every, unit=unit)
        rule.full_clean()
        rule.save()
    after = sorted(str(r) for r in tier.rules.all())
    if before != after:
        record(actor, "update", tier, changes={"rules": [before, after]})
    return tier


# Activities --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewAttendee:
    """Someone met on the spot: becomes an office contact in the directory."""

    first_name: str
    last_name: str = ""
    role: str = ContactRole.OTHER
    title: str = ""


@dataclass(frozen=True)
class FollowUp:
    title: str
    due_on: date
    assignee: User
    details: str = ""


ACTIVITY_FIELDS = (
    "kind",
    "status",
    "occurred_at",
    "duration_minutes",
    "purpose",
    "topics",
    "clinical_questions",
    "outcome",
    "next_step",
    "cost",
    "office_head_count",
    "location",
)


def _check_attendees(
    our_physicians: list[Provider], providers: list[Provider], contacts: list[Contact]
) -> None:
    errors: dict[str, list[str]] = {}
    not_ours = [p.display_name for p in our_physicians if not p.is_ours]
    if not_ours:
        errors["our_physicians"] = [f"Not one of our physicians: {', '.join(not_ours)}."]
    ours = [p.display_name for p in providers if p.is_ours]
    if ours:
        errors["providers"] = [f"{', '.join(ours)}: one of ours, not a referring provider."]
    ours_staff = [str(c) for c in contacts if c.practice.is_ours]
    if ours_staff:
        errors["contacts"] = [f"{', '.join(ours_staff)}: on our own staff, not the office's."]
    if errors:
        raise ValidationError(errors)


def _shares_for(
    activity: Activity, providers: list[Provider], contacts: list[Contact]
) -> dict[Provider, Decimal]:
    if activity.status == ActivityStatus.CANCELLED:
        return {}
    share = ledger.per_head_share(
        activity.cost or Decimal("0"), len(providers) + len(contacts), activity.office_head_count
    )
    if not share:
        return {}
    return {p: share for p in providers if ledger.counts_against_limit(p)}


def preview_limit_warnings(
    *,
    cost: Decimal,
    occurred_at: datetime,
    providers: Iterable[Provider],
    contacts_count: int,
    office_head_count: int | None = None,
    status: str = ActivityStatus.COMPLETED,
    activity: Activity | None = None,
) -> list[ledger.LimitWarning]:
    """The warnings saving such an activity would give (for the form, before saving)."""
    draft = Activity(cost=cost or Decimal("0"), office_head_count=office_head_count, status=status)
    providers = list(providers)
    share = ledger.per_head_share(draft.cost, len(providers) + contacts_count, office_head_count)
    if status == ActivityStatus.CANCELLED or not share:
        return []
    shares = {p: share for p in providers if ledger.counts_against_limit(p)}
    return ledger.check_shares(
        shares, timezone.localdate(occurred_at).year, exclude_activity_id=activity.pk if activity else None
    )


def _rewrite_ledger(activity: Activity, shares: dict[Provider, Decimal], *, creating: bool) -> None:
    if not creating:
        LedgerEntry.objects.filter(activity=activity).delete()
    day = timezone.localdate(activity.occurred_at)
    LedgerEntry.objects.bulk_create(
        LedgerEntry(activity=activity, provider=p, on=day, year=day.year, amount=amount)
        for p, amount in shares.items()
    )


def _attendee_keys(rows: Iterable[Attendee]) -> list[str]:
    return sorted((f"p{a.provider_id}" if a.provider_id else f"c{a.contact_id}") for a in rows)


def _set_attendees(
    activity: Activity,
    our: list[Provider],
    providers: list[Provider],
    contacts: list[Contact],
    *,
    creating: bool,
) -> dict:
    before = [] if creating else _attendee_keys(activity.attendees.all())
    rows = [Attendee(activity=activity, provider=p, is_ours=True) for p in dict.fromkeys(our)]
    rows += [Attendee(activity=activity, provider=p) for p in dict.fromkeys(providers)]
    rows += [Attendee(activity=activity, contact=c) for c in dict.fromkeys(contacts)]
    after = _attendee_keys(rows)
    if before == after:
        return {}
    if not creating:
        activity.attendees.all().delete()
    Attendee.objects.bulk_create(rows)
    return {"attendees": [before, after]}


def _set_materials(activity: Activity, materials: Mapping[CollateralItem, int], *, creating: bool) -> dict:
    before = {} if creating else {m.item_id: m.quantity for m in activity.materials.all()}
    after = {item.pk: int(q) for item, q in materials.items() if q and int(q) > 0}
    if before == after:
        return {}
    if not creating:
        activity.materials.all().delete()
    MaterialLeft.objects.bulk_create(
        MaterialLeft(activity=activity, item_id=pk, quantity=q) for pk, q in after.items()
    )
    return {"materials": [before, after]}


def _create_activity(data: dict[str, Any]) -> tuple[Activity, dict[str, Any]]:
    """Validate and insert a new activity; its audit row is written once the attendees are known."""
    activity = Activity(**data)
    # The related rows were handed over as fetched instances: checking that they exist would be
    # three more queries per activity (the database's foreign keys still guarantee it).
    activity.clean_fields(exclude=["account", "location", "liaison"])
    activity.clean()
    activity.save()
    created = snapshot(activity, audited_fields(Activity))
    return activity, {k: [None, v] for k, v in created.items() if v not in (None, "", False, [])}


def _advance_stage(activity: Activity, office_attendees: int, *, actor: Any) -> None:
    """A logged touch moves a prospect forward: any touch -> contacted, a meeting -> engaged."""
    account = activity.account
    if account is None or activity.status != ActivityStatus.COMPLETED or account.stage not in PROSPECT_STAGES:
        return
    met = activity.is_in_person and office_attendees > 0
    if met and account.stage != Stage.ENGAGED:
        _set_stage(
            account,
            Stage.ENGAGED,
            actor=actor,
            reason=f"met at a {activity.get_kind_display().lower()}",
            at=activity.occurred_at,
        )
    elif account.stage == Stage.TARGET:
        _set_stage(
            account,
            Stage.CONTACTED,
            actor=actor,
            reason=f"first {activity.get_kind_display().lower()}",
            at=activity.occurred_at,
        )


def _close_satisfied_cadence_tasks(activity: Activity, *, actor: Any) -> None:
    if activity.account_id is None or activity.status != ActivityStatus.COMPLETED:
        return
    touches = [t for t, kinds in TOUCH_KINDS.items() if activity.kind in kinds]
    for task in Task.objects.filter(
        account_id=activity.account_id,
        kind=TaskKind.CADENCE,
        status=TaskStatus.OPEN,
        cadence_touch__in=touches,
    ):
        # Done when the touch happened (a visit logged the next day still kept its day).
        when = min(activity.occurred_at, timezone.now()) if activity.occurred_at else None
        _finish_task(task, TaskStatus.DONE, actor=actor, note=f"done by activity {activity.pk}", at=when)


def _save_activity(
    activity: Activity,
    *,
    actor: Any,
    account: Account | None,
    liaison: User | None,
    our_physicians: Iterable[Provider],
    providers: Iterable[Provider],
    contacts: Iterable[Contact],
    new_attendees: Iterable[NewAttendee],
    materials: Mapping[CollateralItem, int] | None,
    follow_up: FollowUp | None,
    confirm_over_limit: bool,
    fields: dict[str, Any],
) -> Activity:
    unknown = set(fields) - set(ACTIVITY_FIELDS)
    if unknown:
        raise TypeError(f"unknown activity fields: {', '.join(sorted(unknown))}")
    when = fields.get("occurred_at", activity.occurred_at)
    if fields.get("status", activity.status) == ActivityStatus.COMPLETED and when > timezone.now() + _GRACE:
        raise ValidationError(
            {"occurred_at": ["This time is in the future: mark it planned, or correct the time."]}
        )
    our_physicians, providers, contacts = list(our_physicians), list(providers), list(contacts)
    new_attendees = [a for a in new_attendees if a.first_name.strip() or a.last_name.strip()]
    _check_attendees(our_physicians, providers, contacts)
    creating = activity._state.adding
    data = {**fields, "account": account}
    if creating or liaison is not None:
        data["liaison"] = liaison or _user(actor)
    if account is not None and "location" not in fields and creating:
        data["location"] = account.location or _main_location(account.practice)
    if follow_up is not None:
        _check_assignee(follow_up.assignee)
        _refuse_patient_identifiers(follow_up=f"{follow_up.title}\n{follow_up.details}")
    _refuse_patient_identifiers(
        **{k: fields[k] for k in ("topics", "clinical_questions", "outcome", "next_step") if k in fields}
    )

    with transaction.atomic():
        # New contacts are checked before anything is written, then created inside the transaction.
        practice = account.practice if account is not None else None
        if new_attendees and practice is None:
            raise ValidationError({"new_attendees": ["Pick the office before adding people met there."]})
        for a in new_attendees:
            if not a.first_name.strip():
                raise ValidationError({"new_attendees": ["Each new person needs a first name."]})
            if a.role not in ContactRole.values:
                raise ValidationError({"new_attendees": [f"Unknown role {a.role!r}."]})
        status = data.get("status", activity.status)
        cost = data.get("cost", activity.cost) or Decimal("0")
        head_count = data.get("office_head_count", activity.office_head_count)
        occurred_at = data.get("occurred_at", activity.occurred_at)
        office_count = len(providers) + len(contacts) + len(new_attendees)
        warnings = preview_limit_warnings(
            cost=cost,
            occurred_at=occurred_at,
            providers=providers,
            contacts_count=len(contacts) + len(new_attendees),
            office_head_count=head_count,
            status=status,
            activity=None if creating else activity,
        )
        over = [w for w in warnings if w.level == "over"]
        if over and not confirm_over_limit:
            raise ValidationError(
                {
                    "cost": [w.message for w in over]
                    + ["Confirm to record it anyway (compliance will see it)."]
                },
                code="over_limit",
            )
        if creating:
            activity, changes = _create_activity(data)
        else:
            activity, changes = save_with_audit(activity, data, actor=actor), {}
        for a in new_attendees:
            contacts.append(
                directory.create_contact(
                    practice,
                    actor=actor,
                    first_name=a.first_name.strip(),
                    last_name=a.last_name.strip(),
                    role=a.role,
                    title=a.title or ContactRole(a.role).label,
                    location=activity.location
                    if activity.location and activity.location.practice_id == practice.pk
                    else None,
                )
            )
        changes |= _set_attendees(activity, our_physicians, providers, contacts, creating=creating)
        if materials is not None:
            changes |= _set_materials(activity, materials, creating=creating)
        if creating or changes:
            record(actor, "create" if creating else "update", activity, changes=changes)
        _rewrite_ledger(activity, _shares_for(activity, providers, contacts), creating=creating)
        _advance_stage(activity, office_count, actor=actor)
        _close_satisfied_cadence_tasks(activity, actor=actor)
        if follow_up is not None:
            create_task(
                actor=actor,
                title=follow_up.title,
                due_on=follow_up.due_on,
                assignee=follow_up.assignee,
                account=account,
                activity=activity,
                details=follow_up.details,
            )
    activity.limit_warnings = warnings  # type: ignore[attr-defined]  (shown once after saving)
    return activity


def log_activity(
    *,
    actor: Any,
    account: Account | None,
    kind: str,
    occurred_at: datetime | None = None,
    liaison: User | None = None,
    our_physicians: Iterable[Provider] = (),
    providers: Iterable[Provider] = (),
    contacts: Iterable[Contact] = (),
    new_attendees: Iterable[NewAttendee] = (),
    materials: Mapping[CollateralItem, int] | None = None,
    follow_up: FollowUp | None = None,
    confirm_over_limit: bool = False,
    **fields: Any,
) -> Activity:
    """Log (or plan) an activity with its attendees on both sides, the materials left and a
    follow-up task, in one transaction. Rewrites the ledger and moves a prospect forward.

    The returned activity carries `limit_warnings` (80 % reached, or over the limit: the latter
    refused unless `confirm_over_limit`)."""
    occurred_at = occurred_at or timezone.now()
    fields.setdefault(
        "status",
        ActivityStatus.PLANNED if occurred_at > timezone.now() + _GRACE else ActivityStatus.COMPLETED,
    )
    return _save_activity(
        Activity(),
        actor=actor,
        account=account,
        liaison=liaison,
        our_physicians=our_physicians,
        providers=providers,
        contacts=contacts,
        new_attendees=new_attendees,
        materials=materials,
        follow_up=follow_up,
        confirm_over_limit=confirm_over_limit,
        fields={"kind": kind, "occurred_at": occurred_at, **fields},
    )


def update_activity(
    activity: Activity,
    *,
    actor: Any,
    account: Account | None = _UNSET,
    liaison: User | None = None,
    our_physicians: Iterable[Provider] | None = None,
    providers: Iterable[Provider] | None = None,
    contacts: Iterable[Contact] | None = None,
    new_attendees: Iterable[NewAttendee] = (),
    materials: Mapping[CollateralItem, int] | None = None,
    follow_up: FollowUp | None = None,
    confirm_over_limit: bool = False,
    **fields: Any,
) -> Activity:
    """Change an activity; attendees not given stay as they are."""
    current = list(activity.attendees.select_related("provider__primary_taxonomy", "contact__practice"))
    if our_physicians is None:
        our_physicians = [a.provider for a in current if a.is_ours]
    if providers is None:
        providers = [a.provider for a in current if a.provider_id and not a.is_ours]
    if contacts is None:
        contacts = [a.contact for a in current if a.contact_id]
    return _save_activity(
        activity,
        actor=actor,
        account=activity.account if account is _UNSET else account,
        liaison=liaison,
        our_physicians=our_physicians,
        providers=providers,
        contacts=contacts,
        new_attendees=new_attendees,
        materials=materials,
        follow_up=follow_up,
        confirm_over_limit=confirm_over_limit,
        fields=fields,
    )


# Tasks ----------------------------------------------------------------------------------------------


def _check_assignee(assignee: User | None) -> None:
    if assignee is None or not assignee.has_role(*ASSIGNEE_ROLES):
        raise ValidationError(
            {"assignee": ["Assign the task to a liaison, a coordinator, a manager or one of our physicians."]}
        )


def create_task(
    *,
    actor: Any,
    title: str,
    due_on: date,
    assignee: User,
    account: Account | None = None,
    activity: Activity | None = None,
    details: str = "",
    kind: str = TaskKind.FOLLOW_UP,
    cadence_touch: str = "",
    referral: Any = None,
) -> Task:
    _check_assignee(assignee)
    task = Task(kind=kind, cadence_touch=cadence_touch, created_by=_user(actor), referral=referral)
    return save_with_audit(
        task,
        {
            "title": title,
            "due_on": due_on,
            "assignee": assignee,
            "account": account,
            "activity": activity,
            "details": details,
        },
        actor=actor,
    )


def update_task(task: Task, *, actor: Any, **data: Any) -> Task:
    allowed = {"title", "due_on", "assignee", "details", "account"}
    if set(data) - allowed:
        raise TypeError(f"cannot change {', '.join(sorted(set(data) - allowed))}")
    if "assignee" in data:
        _check_assignee(data["assignee"])
    if task.status != TaskStatus.OPEN:
        raise ValidationError({"status": ["This task is closed; reopen it first."]})
    return save_with_audit(task, data, actor=actor)


def _finish_task(task: Task, status: str, *, actor: Any, note: str = "", at: datetime | None = None) -> Task:
    if task.status == status:
        return task
    before = task.status
    task.status = status
    if status == TaskStatus.OPEN:
        task.done_at, task.done_by = None, None
    else:
        task.done_at, task.done_by = at or timezone.now(), _user(actor)
    task.save(update_fields=["status", "done_at", "done_by", "updated_at"])
    changes: dict[str, Any] = {"status": [before, status]}
    if note:
        changes["note"] = note
    record(actor, "status", task, changes=changes)
    return task


def complete_task(task: Task, *, actor: Any) -> Task:
    with transaction.atomic():
        return _finish_task(Task.objects.select_for_update().get(pk=task.pk), TaskStatus.DONE, actor=actor)


def cancel_task(task: Task, *, actor: Any) -> Task:
    with transaction.atomic():
        return _finish_task(
            Task.objects.select_for_update().get(pk=task.pk), TaskStatus.CANCELLED, actor=actor
        )


def reopen_task(task: Task, *, actor: Any) -> Task:
    with transaction.atomic():
        task = Task.objects.select_for_update().get(pk=task.pk)
        if (
            task.kind == TaskKind.CADENCE
            and Task.objects.filter(
                account=task.account,
                kind=TaskKind.CADENCE,
                cadence_touch=task.cadence_touch,
                status=TaskStatus.OPEN,
            )
            .exclude(pk=task.pk)
            .exists()
        ):
            raise ValidationError({"status": ["Another open task already covers this touch."]})
        return _finish_task(task, TaskStatus.OPEN, actor=actor)


def create_due_tasks(*, actor: Any = "cadence job", today: date | None = None) -> dict[str, int]:
    """The daily cadence job's work: one open task per due touch, assigned to the account's owner."""
    from liaison.outreach import cadence

    today = today or timezone.localdate()
    created = skipped_no_owner = 0
    open_keys = set(
        Task.objects.filter(kind=TaskKind.CADENCE, status=TaskStatus.OPEN).values_list(
            "account_id", "cadence_touch"
        )
    )
    for due in cadence.due_touches(cadence.accounts_for_cadence(), today):
        if (due.account.pk, due.touch) in open_keys:
            continue
        if due.account.owner is None or not due.account.owner.is_active:
            skipped_no_owner += 1
            continue
        with transaction.atomic():
            create_task(
                actor=actor,
                title=due.title,
                due_on=due.due_on,
                assignee=due.account.owner,
                account=due.account,
                kind=TaskKind.CADENCE,
                cadence_touch=due.touch,
                details=f"Last {('lunch' if due.touch == 'lunch' else 'touch')}: "
                + (f"{due.last_touch:%b %d, %Y}" if due.last_touch else "never logged"),
            )
        open_keys.add((due.account.pk, due.touch))
        created += 1
    return {"created": created, "no_owner": skipped_no_owner}


# Compensation limits ------------------------------------------------------------------------------


def set_compensation_limit(year: int, amount: Decimal, *, actor: Any, note: str = "") -> CompensationLimit:
    """The admin sets the CMS limit for a calendar year (creating or changing it)."""
    limit = CompensationLimit.objects.filter(year=year).first() or CompensationLimit(year=year)
    return save_with_audit(limit, {"amount": amount, "note": note}, actor=actor)


# Collateral ------------------------------------------------------------------------------------------

ALLOWED_COLLATERAL_EXTENSIONS = {".pdf", ".png", ".jpg", ".jpeg", ".docx", ".doc", ".pptx", ".txt"}


def _check_file(upload: Any) -> None:
    if upload is None:
        return
    ext = PurePath(upload.name).suffix.lower()
    if ext not in ALLOWED_COLLATERAL_EXTENSIONS:
        raise ValidationError(
            {"file": [f"{ext or 'No extension'}: upload a PDF, an image, or a Word or PowerPoint file."]}
        )
    if upload.size > settings.LIAISON_COLLATERAL_MAX_MB * 1024 * 1024:
        raise ValidationError({"file": [f"The file is larger than {settings.LIAISON_COLLATERAL_MAX_MB} MB."]})


def save_collateral(
    item: CollateralItem | None, *, actor: Any, file: Any = None, **data: Any
) -> CollateralItem:
    _check_file(file)
    if file is not None:
        data["file"] = file
    return save_with_audit(item or CollateralItem(), data, actor=actor)


# Calendar feeds --------------------------------------------------------------------------------------

FEED_PREFIX = "cal_"


def hash_feed_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@transaction.atomic
def create_calendar_feed(user: User, *, actor: Any) -> tuple[CalendarFeed, str]:
    """A new private feed URL token for `user` (shown once); any previous feed stops working."""
    for old in CalendarFeed.objects.usable().filter(user=user):
        revoke_calendar_feed(old, actor=actor)
    raw = FEED_PREFIX + secrets.token_urlsafe(32)
    feed = CalendarFeed.objects.create(user=user, prefix=raw[:10], digest=hash_feed_token(raw))
    record(actor, "create", feed)
    return feed, raw


def revoke_calendar_feed(feed: CalendarFeed, *, actor: Any) -> CalendarFeed:
    if feed.revoked_at is None:
        feed.revoked_at = timezone.now()
        feed.save(update_fields=["revoked_at"])
        record(actor, "revoke", feed)
    return feed


def feed_for_token(raw: str) -> CalendarFeed | None:
    if not raw or len(raw) > 200 or not raw.startswith(FEED_PREFIX):
        return None
    feed = CalendarFeed.objects.usable().select_related("user").filter(digest=hash_feed_token(raw)).first()
    if feed is not None:
        now = timezone.now()
        if feed.last_used_at is None or (now - feed.last_used_at).total_seconds() > 3600:
            CalendarFeed.objects.filter(pk=feed.pk).update(last_used_at=now)
    return feed


# Planning a day route ------------------------------------------------------------------------------


@transaction.atomic
def plan_route_visits(
    legs: Iterable[Any], *, day: date, actor: Any, liaison: User, lunch_keys: Iterable[Any] = ()
) -> list[Activity]:
    """Turn a computed day route into planned activities (they appear in the calendar feed)."""
    lunch_keys = set(lunch_keys)
    out = []
    tz = timezone.get_current_timezone()
    for leg in legs:
        account = leg.stop.key if isinstance(leg.stop.key, Account) else Account.objects.get(pk=leg.stop.key)
        when = datetime(day.year, day.month, day.day, leg.arrival // 60, leg.arrival % 60, tzinfo=tz)
        out.append(
            log_activity(
                actor=actor,
                account=account,
                kind=ActivityKind.LUNCH if account.pk in lunch_keys else ActivityKind.VISIT,
                occurred_at=when,
                liaison=liaison,
                status=ActivityStatus.PLANNED,
                duration_minutes=leg.departure - leg.arrival,
            )
        )
    return out


# Reference data ---------------------------------------------------------------------------------

STARTING_TIERS = [
    ("A", "Key account", "High referral value or potential: see them monthly, feed them quarterly.", 1,
     [("in_person", 30, "day"), ("lunch", 1, "quarter")]),
    ("B", "Growth account", "Refers sometimes or could refer more.", 2,
     [("in_person", 60, "day"), ("lunch", 2, "quarter")]),
    ("C", "Maintain", "Low volume: keep in touch.", 3, [("any", 90, "day")]),
]  # fmt: skip
CMS_LIMITS = [
    (2024, Decimal("507.00"), "CMS non-monetary compensation limit for CY 2024"),
    (2025, Decimal("521.00"), "CMS non-monetary compensation limit for CY 2025"),
    (2026, Decimal("535.00"), "CMS non-monetary compensation limit for CY 2026"),
]


def ensure_reference_data() -> None:
    """The starting tiers and the CMS limits, as the migration seeds them (a flushed database,
    as in browser tests, needs them again). Leaves existing rows alone."""
    for code, name, description, rank, rules in STARTING_TIERS:
        tier, created = Tier.objects.get_or_create(
            code=code, defaults={"name": name, "description": description, "rank": rank}
        )
        if created:
            for touch, every, unit in rules:
                CadenceRule.objects.create(tier=tier, touch=touch, every=every, unit=unit)
    for year, amount, note in CMS_LIMITS:
        CompensationLimit.objects.get_or_create(year=year, defaults={"amount": amount, "note": note})
