"""Every write to a referral. Pages, the API, HL7/FHIR/CSV intake, the portal and tests call these.

Each service runs in one transaction, appends the `ReferralEvent` history row, writes the audit
row (patient fields named, never their values) and enqueues notifications after the commit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from liaison.audit.services import diff, record, snapshot
from liaison.core.phi import encrypt_bytes, phi_index
from liaison.directory.models import Location, Provider
from liaison.directory.validators import normalize_phone
from liaison.referrals.models import (
    PHI_FIELDS,
    TRANSITIONS,
    ContactOutcome,
    DeclineReason,
    EmergencyAccess,
    EventKind,
    Notification,
    NotifyBy,
    OfficePreference,
    Referral,
    ReferralDocument,
    ReferralEvent,
    Status,
)

# The steps the referring office is told of. A decline and a cancellation most of all: the office
# has to find the patient another specialist.
MILESTONES = (
    Status.RECEIVED,
    Status.DECLINED,
    Status.SCHEDULED,
    Status.SEEN,
    Status.NO_SHOW,
    Status.CANCELLED,
    Status.NOTE_SENT,
)
MAX_DOCUMENT_BYTES = 25 * 1024 * 1024
DOCUMENT_TYPES = ("application/pdf", "image/tiff", "image/png", "image/jpeg")
INCLUDED_WITH_NOTE = ("consult_note", "prescriptions", "orders", "recommendations", "imaging", "work_note")
EDITABLE_FIELDS = (
    *PHI_FIELDS,
    "payer",
    "urgency",
    "channel",
    "site",
    "referred_to_physician",
    "service_line",
    "assigned_to",
)


class TransitionError(ValidationError):
    """A status change that the lifecycle does not allow from the current status."""


def _actor_label(actor: Any) -> str:
    return getattr(actor, "email", None) or str(actor or "system")


def _event(
    referral: Referral,
    kind: str,
    *,
    actor: Any,
    at: dt.datetime | None = None,
    note: str = "",
    from_status: str = "",
    to_status: str = "",
    data: dict | None = None,
) -> ReferralEvent:
    return ReferralEvent.objects.create(
        referral=referral,
        kind=kind,
        at=at or timezone.now(),
        actor=actor if getattr(actor, "pk", None) else None,
        actor_label=_actor_label(actor),
        note=note,
        from_status=from_status,
        to_status=to_status,
        data=data or {},
    )


def _index(referral: Referral) -> None:
    referral.patient_key = phi_index(referral.patient_last_name, referral.patient_dob)
    referral.patient_name_key = phi_index(referral.patient_last_name)
    referral.mrn_key = phi_index(referral.patient_mrn) if referral.patient_mrn else ""


def _clean_patient(referral: Referral, today: dt.date | None = None) -> None:
    errors: dict[str, list[str]] = {}
    for field in ("patient_first_name", "patient_last_name"):
        if not (getattr(referral, field) or "").strip():
            errors[field] = ["Required."]
        else:
            setattr(referral, field, getattr(referral, field).strip())
    dob = referral.patient_dob
    if not dob:
        errors["patient_dob"] = ["Required."]
    elif isinstance(dob, dt.date) and not (dt.date(1900, 1, 1) <= dob <= (today or timezone.localdate())):
        errors["patient_dob"] = ["A date of birth between 1900 and today."]
    if referral.patient_phone:
        try:
            referral.patient_phone = normalize_phone(referral.patient_phone)
        except ValidationError as exc:
            errors["patient_phone"] = exc.messages
    if referral.site_id and not referral.site.practice.is_ours:
        errors["site"] = ["Pick one of our sites."]
    if referral.referred_to_physician_id and not referral.referred_to_physician.is_ours:
        errors["referred_to_physician"] = ["Pick one of our physicians."]
    if errors:
        raise ValidationError(errors)


@dataclass
class ReferrerInfo:
    """The referrer as the source described it. Any field may be blank."""

    npi: str = ""
    first_name: str = ""
    last_name: str = ""
    phone: str = ""
    fax: str = ""
    practice: str = ""
    address: str = ""

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in self.__dict__.items() if v}


def resolve_referrer(info: ReferrerInfo) -> tuple[Provider | None, Location | None]:
    """The directory provider (and office) the description designates without doubt, else None."""
    if info.npi:
        # exclude(npi=""): the partial unique index's condition, without which SQLite scans the table.
        provider = Provider.objects.filter(npi=info.npi.strip()).exclude(npi="").first()
        if provider is not None:
            return provider, _single_location(provider)
    return None, None


def _single_location(provider: Provider) -> Location | None:
    locations = list(provider.locations.all()[:2])
    return locations[0] if len(locations) == 1 else None


def referrer_candidates(info: ReferrerInfo, limit: int = 10) -> list[tuple[Provider, list[str]]]:
    """Providers that may be the referrer, each with why (NPI, name, phone or fax of an office)."""
    reasons: dict[int, list[str]] = {}

    def add(qs: Any, why: str) -> None:
        for provider_id in qs.values_list("pk", flat=True)[:limit]:
            reasons.setdefault(provider_id, []).append(why)

    if info.npi:
        add(Provider.objects.filter(npi__startswith=info.npi.strip()[:9]), "NPI")
    if info.last_name:
        by_name = Provider.objects.filter(last_name__iexact=info.last_name.strip())
        if info.first_name:
            by_name = by_name.filter(first_name__istartswith=info.first_name.strip()[:1])
        add(by_name, "name")
    for number, label in ((info.phone, "phone"), (info.fax, "fax")):
        if not number:
            continue
        try:
            formatted = normalize_phone(number)
        except ValidationError:
            continue
        add(Provider.objects.filter(Q(**{f"locations__{label}": formatted})).distinct(), f"office {label}")
    providers = Provider.objects.in_bulk(list(reasons))
    ranked = sorted(reasons.items(), key=lambda item: (-len(item[1]), providers[item[0]].last_name))
    return [(providers[pk], why) for pk, why in ranked[:limit]]


def find_duplicates(
    *,
    patient_last_name: str,
    patient_dob: dt.date,
    referring_provider: Provider | None,
    received_on: dt.date,
    days: int = 3,
    among: QuerySet[Referral] | None = None,
) -> list[Referral]:
    """Referrals for the same patient (last name + DOB) from the same referrer within a few days,
    among those given (e.g. the ones the user may see)."""
    qs = (Referral.objects.all() if among is None else among).filter(
        patient_key=phi_index(patient_last_name, patient_dob),
        received_at__date__gte=received_on - dt.timedelta(days=days),
        received_at__date__lte=received_on + dt.timedelta(days=days),
    )
    if referring_provider is not None:
        qs = qs.filter(referring_provider=referring_provider)
    return list(qs.order_by("-received_at"))


def validate_new_referral(
    referral: Referral, *, exclude: Iterable[str] = (), unique: bool = True, today: dt.date | None = None
) -> None:
    """Normalise and check a new, unsaved referral (intake, and the bulk file import, which
    checks related rows and identifiers for many rows at once: it excludes them and unique=False,
    and gives today's date once for all its rows)."""
    _clean_patient(referral, today)
    _index(referral)
    referral.full_clean(
        exclude=["patient_key", "patient_name_key", *exclude],
        validate_unique=unique,
        validate_constraints=unique,
    )


@transaction.atomic
def receive_referral(
    *,
    actor: Any,
    referrer: ReferrerInfo | None = None,
    referring_provider: Provider | None = None,
    referring_location: Location | None = None,
    received_at: dt.datetime | None = None,
    note: str = "",
    **fields: Any,
) -> Referral:
    """Record a new referral. An unknown referrer never loses it: it is flagged "referrer to match".

    `fields` are Referral fields (patient_*, reason, icd10_codes, payer, urgency, channel, site,
    referred_to_physician, service_line, assigned_to, source_system, external_id).
    """
    referrer = referrer or ReferrerInfo()
    if referring_provider is None:
        referring_provider, found_location = resolve_referrer(referrer)
        referring_location = referring_location or found_location
    elif referring_location is None:
        referring_location = _single_location(referring_provider)
    referral = Referral(
        referring_provider=referring_provider,
        referring_location=referring_location,
        referrer_to_match=referring_provider is None,
        referrer_as_received=referrer.as_dict(),
        received_at=received_at or timezone.now(),
        **fields,
    )
    validate_new_referral(referral)
    referral.save()
    event = _event(
        referral,
        EventKind.STATUS,
        actor=actor,
        at=referral.received_at,
        note=note,
        to_status=Status.RECEIVED,
        data={"channel": referral.channel},
    )
    _tell_outreach(referral, actor)
    record(
        actor,
        "create",
        referral,
        phi=True,
        changes={
            **{f: "(patient data)" for f in PHI_FIELDS if getattr(referral, f)},
            "channel": referral.channel,
            "urgency": referral.urgency,
            "referrer_to_match": referral.referrer_to_match,
        },
    )
    _notify_on_commit(event)
    return referral


def _tell_outreach(referral: Referral, actor: Any) -> None:
    """A referral from a practice opens (or reopens) its outreach account: the pipeline's
    "referring" stage comes from real referrals."""
    from liaison.outreach.services import record_first_referral

    location = referral.referring_location
    practice = location.practice if location is not None else None
    if practice is None and referral.referring_provider is not None:
        first = referral.referring_provider.locations.select_related("practice").first()
        practice = first.practice if first is not None else None
    if practice is not None and not practice.is_ours:
        record_first_referral(practice, when=referral.received_at, actor=actor, location=location)


def _notify_on_commit(event: ReferralEvent) -> None:
    if event.to_status == Status.RECEIVED and event.from_status:
        return  # re-opened: the office already had its acknowledgement
    if event.to_status in MILESTONES:
        from liaison.referrals.tasks import notify_referring_office

        transaction.on_commit(lambda: notify_referring_office.enqueue(event_id=event.pk))


@transaction.atomic
def change_status(
    referral: Referral,
    to_status: str,
    *,
    actor: Any,
    note: str = "",
    at: dt.datetime | None = None,
    appointment_at: dt.datetime | None = None,
    decline_reason: str = "",
    channel: str = "",
    included: Iterable[str] = (),
) -> ReferralEvent:
    """Move a referral along its lifecycle; refuses a transition the lifecycle does not allow.

    scheduled needs `appointment_at` (again scheduled = a reschedule); declined needs a
    `decline_reason`; note_sent records the `channel` and what went back (`included`).
    """
    referral = Referral.objects.select_for_update().get(pk=referral.pk)
    current = referral.status
    if to_status not in TRANSITIONS.get(current, ()):
        allowed = ", ".join(Status(s).label.lower() for s in TRANSITIONS.get(current, ())) or "nothing"
        raise TransitionError(
            f"A {Status(current).label.lower()} referral cannot become {Status(to_status).label.lower()}; "
            f"from here it can become: {allowed}."
        )
    now = at or timezone.now()
    data: dict[str, Any] = {}
    if to_status == Status.SCHEDULED:
        if appointment_at is None:
            raise ValidationError({"appointment_at": ["Give the appointment date and time."]})
        if current == Status.SCHEDULED and referral.appointment_at:
            data["rescheduled_from"] = referral.appointment_at.isoformat()
        referral.appointment_at = appointment_at
        data["appointment_at"] = appointment_at.isoformat()
        # Scheduling is a contact with the patient when none was recorded.
        referral.first_contact_at = referral.first_contact_at or now
    elif to_status == Status.DECLINED:
        if decline_reason not in DeclineReason.values:
            raise ValidationError({"decline_reason": ["Say why the referral is declined."]})
        data["decline_reason"] = decline_reason
    elif to_status == Status.NO_SHOW:
        if referral.appointment_at and referral.appointment_at > now:
            raise ValidationError(
                {
                    "appointment_at": [
                        f"The appointment is on {timezone.localtime(referral.appointment_at):%b %-d at %-I:%M %p}: "
                        "a no-show is recorded once it has passed (or reschedule or cancel it)."
                    ]
                }
            )
    elif to_status == Status.SEEN:
        # Recorded after the visit: the patient was seen at the appointment, not when it was recorded
        # (the letter says so, and the consult note's service level counts from it).
        past = referral.appointment_at is not None and referral.appointment_at <= now
        referral.seen_at = referral.appointment_at if past and at is None else now
    elif to_status == Status.NOTE_SENT:
        included = list(included)
        bad = [i for i in included if i not in INCLUDED_WITH_NOTE]
        if not channel:
            raise ValidationError({"channel": ["Say how the note went back."]})
        if bad:
            raise ValidationError({"included": [f"Unknown: {', '.join(bad)}"]})
        if not included:
            raise ValidationError(
                {"included": ["Tick what went back to the office: the consult note at least."]}
            )
        referral.note_sent_at = now
        data.update(channel=channel, included=sorted(set(included)))
    elif to_status == Status.CLOSED:
        referral.closed_at = now
    elif to_status == Status.RECEIVED:  # re-opened
        data["reopened_from"] = current
        referral.closed_at = None
    referral.status = to_status
    referral.save(
        update_fields=[
            "status",
            "appointment_at",
            "first_contact_at",
            "seen_at",
            "note_sent_at",
            "closed_at",
            "updated_at",
        ]
    )
    event = _event(
        referral,
        EventKind.STATUS,
        actor=actor,
        at=now,
        note=note,
        from_status=current,
        to_status=to_status,
        data=data,
    )
    record(
        actor,
        "status",
        referral,
        phi=bool(note),
        changes={"status": [current, to_status], **{k: v for k, v in data.items() if k != "included"}},
    )
    _notify_on_commit(event)
    _resolve_done_steps(referral)
    return event


@transaction.atomic
def record_contact(
    referral: Referral, *, actor: Any, outcome: str, note: str = "", at: dt.datetime | None = None
) -> ReferralEvent:
    """A call or message to the patient ('reached', 'left message', 'no answer')."""
    if outcome not in ContactOutcome.values:
        raise ValidationError({"outcome": ["Reached, left a message, no answer or wrong number."]})
    now = at or timezone.now()
    if referral.first_contact_at is None and outcome in (ContactOutcome.REACHED, ContactOutcome.LEFT_MESSAGE):
        Referral.objects.filter(pk=referral.pk).update(first_contact_at=now)
        referral.first_contact_at = now
    event = _event(referral, EventKind.CONTACT, actor=actor, at=now, note=note, data={"outcome": outcome})
    record(actor, "contact", referral, phi=bool(note), changes={"outcome": outcome})
    _resolve_done_steps(referral)
    return event


def _resolve_done_steps(referral: Referral) -> None:
    from liaison.referrals.tasks import resolve_done_steps

    resolve_done_steps(referral)


@transaction.atomic
def add_note(referral: Referral, *, actor: Any, note: str) -> ReferralEvent:
    if not note.strip():
        raise ValidationError({"note": ["Write the note."]})
    event = _event(referral, EventKind.NOTE, actor=actor, note=note.strip())
    record(actor, "note", referral, phi=True)
    return event


@transaction.atomic
def assign(referrals: Iterable[Referral], user: Any, *, actor: Any) -> int:
    """Assign one or many referrals to a coordinator (None to unassign)."""
    if user is not None and not user.can_see_phi:
        raise ValidationError({"assigned_to": ["Referrals go to someone allowed to see patient data."]})
    count = 0
    for referral in referrals:
        if referral.assigned_to_id == getattr(user, "pk", None):
            continue
        before = referral.assigned_to_id
        Referral.objects.filter(pk=referral.pk).update(assigned_to=user, updated_at=timezone.now())
        _event(
            referral,
            EventKind.ASSIGNMENT,
            actor=actor,
            data={"from": before, "to": getattr(user, "pk", None)},
        )
        record(actor, "assign", referral, changes={"assigned_to": [before, getattr(user, "pk", None)]})
        count += 1
    return count


@transaction.atomic
def match_referrer(
    referral: Referral, provider: Provider, *, actor: Any, location: Location | None = None
) -> Referral:
    if provider.is_ours:
        raise ValidationError(
            {"provider": ["Our own physicians do not refer to us here: pick the referring provider."]}
        )
    if location is not None and not provider.locations.filter(pk=location.pk).exists():
        raise ValidationError({"location": ["This provider does not practise at that office."]})
    before = referral.referring_provider_id
    referral.referring_provider = provider
    referral.referring_location = location or _single_location(provider)
    referral.referrer_to_match = False
    referral.save(
        update_fields=["referring_provider", "referring_location", "referrer_to_match", "updated_at"]
    )
    _event(referral, EventKind.REFERRER, actor=actor, data={"provider": provider.pk, "was": before})
    _tell_outreach(referral, actor)
    record(actor, "match_referrer", referral, changes={"referring_provider": [before, provider.pk]})
    if referral.referring_location is not None:
        # The office could not be told before we knew who it was: tell it where the referral is now.
        latest = (
            referral.events.filter(kind=EventKind.STATUS, to_status__in=MILESTONES)
            .order_by("-at", "-pk")
            .first()
        )
        if latest is not None and not Notification.objects.filter(event=latest).exists():
            _notify_on_commit(latest)
    return referral


@transaction.atomic
def set_office_preference(
    location: Location, *, actor: Any, notify_by: str, contact: Any = None, fhir_endpoint: str = ""
) -> OfficePreference:
    """How a referring office wants to hear about its referrals (a letter by default)."""
    if notify_by not in NotifyBy.values:
        raise ValidationError({"notify_by": ["Letter, email, FHIR or none."]})
    if contact is not None and contact.practice_id != location.practice_id:
        raise ValidationError({"contact": ["Pick someone who works at this practice."]})
    if notify_by == NotifyBy.EMAIL and (contact is None or not contact.email):
        raise ValidationError(
            {"contact": ["Emails go to a person with an email address: pick one (or add theirs)."]}
        )
    if fhir_endpoint and not fhir_endpoint.startswith(("https://", "http://")):
        raise ValidationError({"fhir_endpoint": ["The FHIR endpoint is an http(s) URL."]})
    preference, _ = OfficePreference.objects.get_or_create(location=location)
    before = {
        "notify_by": preference.notify_by,
        "contact": preference.contact_id,
        "fhir_endpoint": preference.fhir_endpoint,
    }
    preference.notify_by, preference.contact, preference.fhir_endpoint = notify_by, contact, fhir_endpoint
    preference.save()
    after = {"notify_by": notify_by, "contact": getattr(contact, "pk", None), "fhir_endpoint": fhir_endpoint}
    record(
        actor,
        "office_preference",
        location,
        changes={k: [before[k], v] for k, v in after.items() if before[k] != v},
    )
    return preference


@transaction.atomic
def mark_letter_sent(
    notification: Notification, *, actor: Any, at: dt.datetime | None = None
) -> Notification:
    """A prepared letter was faxed or mailed to the office: only now has the office been told."""
    notification = Notification.objects.select_for_update().select_related("referral").get(pk=notification.pk)
    if notification.channel != NotifyBy.LETTER:
        raise ValidationError("Only a letter is faxed or mailed by hand.")
    if notification.outcome == Notification.Outcome.SENT:
        return notification  # marked already (two coordinators, or a second click)
    notification.outcome = Notification.Outcome.SENT
    notification.sent_at = at or timezone.now()
    notification.save(update_fields=["outcome", "sent_at"])
    _event(
        notification.referral,
        EventKind.NOTIFICATION,
        actor=actor,
        at=notification.sent_at,
        data={
            "notification": notification.pk,
            "milestone": notification.milestone,
            "channel": notification.channel,
            "outcome": notification.outcome,
        },
    )
    record(actor, "letter_sent", notification.referral, changes={"milestone": notification.milestone})
    return notification


@transaction.atomic
def update_referral(referral: Referral, *, actor: Any, **fields: Any) -> Referral:
    """Correct the details of a referral (not its status: see change_status)."""
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"not editable here: {', '.join(sorted(unknown))}")
    names = list(fields)
    before = snapshot(referral, names)
    for name, value in fields.items():
        setattr(referral, name, value)
    _clean_patient(referral)
    _index(referral)
    referral.full_clean()
    changes = diff(before, snapshot(referral, names), PHI_FIELDS)
    if not changes:
        return referral
    referral.save()
    _event(referral, EventKind.EDIT, actor=actor, data={"fields": sorted(changes)})
    record(actor, "update", referral, changes=changes, phi=any(f in PHI_FIELDS for f in changes))
    return referral


@transaction.atomic
def attach_document(
    referral: Referral, *, actor: Any, name: str, content: bytes, content_type: str
) -> ReferralDocument:
    """Store a document encrypted (the file on disk is ciphertext, its name reveals nothing)."""
    if not content:
        raise ValidationError({"file": ["The file is empty."]})
    if len(content) > MAX_DOCUMENT_BYTES:
        raise ValidationError({"file": [f"Files up to {MAX_DOCUMENT_BYTES // (1024 * 1024)} MB."]})
    if content_type not in DOCUMENT_TYPES:
        raise ValidationError({"file": ["Attach a PDF or an image (TIFF, PNG, JPEG)."]})
    document = ReferralDocument(
        referral=referral,
        filename=name[:200],
        content_type=content_type,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        uploaded_by=actor if getattr(actor, "pk", None) else None,
    )
    document.file.save("document.bin", ContentFile(encrypt_bytes(content)), save=False)
    document.save()
    _event(
        referral,
        EventKind.DOCUMENT,
        actor=actor,
        data={"document": document.pk, "content_type": content_type, "size": len(content)},
    )
    record(actor, "attach", referral, phi=True, changes={"document": document.pk})
    return document


def record_phi_view(actor: Any, referral: Referral, what: str = "view") -> None:
    """Every display of a referral's patient data leaves an audit row."""
    record(actor, what, referral, phi=True)


def record_phi_list(actor: Any, referrals: Iterable[Referral], what: str = "view_list") -> None:
    ids = [r.pk for r in referrals]
    if ids:
        record(
            actor,
            what,
            object_type="referrals.referral",
            object_repr=f"{len(ids)} referrals",
            phi=True,
            changes={"ids": ids},
        )


def record_denied(actor: Any, object_id: object, path: str) -> None:
    """A user tried to open a referral they may not see."""
    record(
        actor, "denied", object_type="referrals.referral", object_id=str(object_id), object_repr=path[:200]
    )


EMERGENCY_ACCESS_MINUTES = 60


@transaction.atomic
def grant_emergency_access(referral_id: int, *, actor: Any, reason: str) -> EmergencyAccess:
    """Break-glass for a physician: an hour's access to one referral, with a reason, audited and
    reported to the admins at once."""
    from django.core.mail import mail_admins

    from liaison.accounts.models import Role, User

    if getattr(actor, "role", None) != Role.PHYSICIAN:
        raise ValidationError(
            {"reason": ["Emergency access is for physicians; other roles see what their work needs."]}
        )
    if len(reason.strip()) < 10:
        raise ValidationError(
            {"reason": ["Say why you need this patient's referral now (at least a few words)."]}
        )
    referral = Referral.objects.filter(pk=referral_id).first()
    if referral is None:
        raise ValidationError({"reason": ["There is no such referral."]})
    access = EmergencyAccess.objects.create(
        user=actor,
        referral=referral,
        reason=reason.strip()[:1000],
        expires_at=timezone.now() + dt.timedelta(minutes=EMERGENCY_ACCESS_MINUTES),
    )
    record(
        actor,
        "emergency_access",
        referral,
        phi=True,
        changes={"reason": "(recorded, encrypted)", "minutes": EMERGENCY_ACCESS_MINUTES},
    )
    admins = list(User.objects.filter(role=Role.ADMIN, is_active=True).values_list("email", flat=True))
    message = (
        f"{actor.email} used emergency access to referral #{referral.pk} at {timezone.localtime(access.granted_at):%Y-%m-%d %H:%M}.\n"
        f"The reason given is on record (emergency access #{access.pk}); review it in the audit trail.\n"
    )
    if admins:
        transaction.on_commit(lambda: _send(admins, message))
    else:
        transaction.on_commit(lambda: mail_admins("Emergency access used", message, fail_silently=True))
    return access


def _send(recipients: list[str], message: str) -> None:
    from django.core.mail import send_mail

    send_mail("Liaison: emergency access used", message, None, recipients, fail_silently=True)
