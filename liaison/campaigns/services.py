"""Writes of campaigns. Pages, the API, the commands, the demo generator and the tests call these.

Every write takes a keyword-only `actor=` (a user, or a string naming who acted: "unsubscribe
link", "campaign sender", "bounce processing"), validates before writing and audits.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.formats import date_format

from liaison.accounts.models import User
from liaison.audit.services import record
from liaison.campaigns import merge, segments
from liaison.campaigns.models import (
    AttemptOutcome,
    Attendance,
    Audience,
    Campaign,
    CampaignKind,
    CampaignStatus,
    Channel,
    Consent,
    DeliveryAttempt,
    Event,
    Question,
    Quiz,
    QuizAnswer,
    QuizDraw,
    QuizRule,
    Recipient,
    RecipientStatus,
    Rsvp,
    RsvpAnswer,
    Segment,
    Suppression,
    SuppressionReason,
    Template,
)
from liaison.campaigns.starters import STARTER_TEMPLATES
from liaison.core.jobs import enqueue_on_commit, start_job
from liaison.core.models import JobRun
from liaison.core.services import save_with_audit
from liaison.directory.models import Contact, Location, Practice, Provider
from liaison.directory.services import resolve_taxonomies
from liaison.feedback.validators import no_patient_identifiers
from liaison.outreach import services as outreach
from liaison.outreach.models import Account, ActivityKind, Attendee, Purpose, Stage, Territory, Tier

MAX_QUESTIONS = 10


def _user(actor: Any) -> User | None:
    return actor if isinstance(actor, User) and actor.pk else None


def _label(actor: Any) -> str:
    user = _user(actor)
    return (user.email if user else str(actor or "system"))[:254]


# Sender identity -------------------------------------------------------------------------------------


def organisation_name() -> str:
    if settings.LIAISON_ORGANISATION_NAME:
        return settings.LIAISON_ORGANISATION_NAME
    ours = Practice.objects.ours().order_by("pk").values_list("name", flat=True).first()
    return ours or ""


def postal_address() -> str:
    """The postal address every email's footer carries (CAN-SPAM): the setting, else our first site."""
    if settings.LIAISON_POSTAL_ADDRESS:
        return settings.LIAISON_POSTAL_ADDRESS
    site = Location.objects.sites().order_by("pk").first()
    return site.short_address if site else ""


# Segments -----------------------------------------------------------------------------------------------


def save_segment(
    segment: Segment | None,
    *,
    actor: Any,
    name: str,
    description: str = "",
    audiences: Iterable[str] = (),
    tiers: Iterable[str] = (),
    stages: Iterable[str] = (),
    specialties: Iterable[str] = (),
    territories: Iterable[int] = (),
    touched_within_days: int | None = None,
    untouched_days: int | None = None,
    consent: str = Consent.ANY,
) -> Segment:
    audiences, tiers, stages = (
        list(dict.fromkeys(audiences)),
        list(dict.fromkeys(tiers)),
        list(dict.fromkeys(stages)),
    )
    territories = [int(t) for t in dict.fromkeys(territories)]
    errors: dict[str, list[str]] = {}
    bad = [a for a in audiences if a not in Audience.values]
    if bad:
        errors["audiences"] = [f"Unknown: {', '.join(map(str, bad))}."]
    known_tiers = set(Tier.objects.filter(code__in=tiers).values_list("code", flat=True))
    if set(tiers) - known_tiers:
        errors["tiers"] = [f"Unknown tier(s): {', '.join(sorted(set(tiers) - known_tiers))}."]
    bad = [s for s in stages if s not in Stage.values]
    if bad:
        errors["stages"] = [f"Unknown stage(s): {', '.join(map(str, bad))}."]
    codes: list[str] = []
    try:
        codes = [t.code for t in resolve_taxonomies(specialties, "specialties")]
    except ValidationError as exc:
        errors.update(exc.message_dict)
    known = set(Territory.objects.filter(pk__in=territories).values_list("pk", flat=True))
    if set(territories) - known:
        errors["territories"] = ["Unknown territory."]
    if consent not in Consent.values:
        errors["consent"] = [f"Unknown consent choice {consent!r}."]
    if (
        touched_within_days is not None
        and untouched_days is not None
        and untouched_days >= touched_within_days
    ):
        errors["untouched_days"] = [
            "Nobody can be both touched in the last "
            f"{touched_within_days} days and untouched for {untouched_days}."
        ]
    if errors:
        raise ValidationError(errors)
    data = {
        "name": name.strip(),
        "description": description.strip(),
        "audiences": audiences,
        "tiers": tiers,
        "stages": stages,
        "specialties": codes,
        "territories": territories,
        "touched_within_days": touched_within_days,
        "untouched_days": untouched_days,
        "consent": consent,
    }
    if segment is None:
        segment = Segment(created_by=_user(actor))
    return save_with_audit(segment, data, actor=actor)


# Templates ------------------------------------------------------------------------------------------------


def _check_template_texts(channel: str, subject: str, body_text: str, body_html: str) -> None:
    errors: dict[str, list[str]] = {}
    for field, text in (("subject", subject), ("body_text", body_text), ("body_html", body_html)):
        try:
            merge.check_text(text, field)
            no_patient_identifiers(text)
        except ValidationError as exc:
            messages = exc.message_dict.get(field, []) if hasattr(exc, "error_dict") else exc.messages
            errors.setdefault(field, []).extend(messages)
        if channel == Channel.LETTER and any(f.startswith("links.") for f in merge.fields_used(text)):
            errors.setdefault(field, []).append("A printed letter cannot carry links: remove {{ links.… }}.")
    if "\n" in subject or "\r" in subject:
        errors.setdefault("subject", []).append("The subject is one line.")
    if errors:
        raise ValidationError(errors)


def save_template(
    template: Template | None,
    *,
    actor: Any,
    name: str,
    channel: str = Channel.EMAIL,
    subject: str,
    body_text: str,
    body_html: str = "",
    is_active: bool = True,
) -> Template:
    if channel == Channel.LETTER:
        body_html = ""
    _check_template_texts(channel, subject, body_text, body_html)
    data = {
        "name": name.strip(),
        "channel": channel,
        "subject": subject.strip(),
        "body_text": body_text.replace("\r\n", "\n"),
        "body_html": body_html.replace("\r\n", "\n"),
        "is_active": is_active,
    }
    if template is None:
        template = Template(created_by=_user(actor))
    return save_with_audit(template, data, actor=actor)


def ensure_starter_templates() -> None:
    """The templates a new install starts with (the migration's; a flushed database needs them)."""
    for t in STARTER_TEMPLATES:
        if not Template.objects.filter(name=t["name"]).exists():
            Template.objects.create(**t)


# Campaigns ----------------------------------------------------------------------------------------------


def _check_campaign_fields(kind: str, template: Template, featured_physician: Provider | None) -> None:
    errors: dict[str, list[str]] = {}
    if kind not in CampaignKind.values:
        errors["kind"] = [f"Unknown kind {kind!r}."]
    wanted = Channel.LETTER if kind == CampaignKind.LETTER else Channel.EMAIL
    if template.channel != wanted:
        errors["template"] = [
            "Pick a letter template for a letter." if wanted == Channel.LETTER else "Pick an email template."
        ]
    if featured_physician is not None and not featured_physician.is_ours:
        errors["featured_physician"] = ["Pick one of our physicians."]
    if errors:
        raise ValidationError(errors)


def create_campaign(
    *,
    actor: Any,
    name: str,
    kind: str,
    segment: Segment,
    template: Template,
    featured_physician: Provider | None = None,
) -> Campaign:
    _check_campaign_fields(kind, template, featured_physician)
    campaign = Campaign(created_by=_user(actor))
    return save_with_audit(
        campaign,
        {
            "name": name.strip(),
            "kind": kind,
            "segment": segment,
            "template": template,
            "featured_physician": featured_physician,
        },
        actor=actor,
    )


def update_campaign(campaign: Campaign, *, actor: Any, **data: Any) -> Campaign:
    allowed = {"name", "segment", "template", "featured_physician"}
    if set(data) - allowed:
        raise TypeError(f"cannot change {', '.join(sorted(set(data) - allowed))}")
    if not campaign.is_draft:
        raise ValidationError("This campaign has been sent: it can no longer be changed.")
    _check_campaign_fields(
        campaign.kind,
        data.get("template", campaign.template),
        data.get("featured_physician", campaign.featured_physician),
    )
    return save_with_audit(campaign, data, actor=actor)


@dataclass(frozen=True)
class QuestionIn:
    text: str
    choices: Sequence[str]
    correct: int


def save_quiz(
    campaign: Campaign,
    *,
    actor: Any,
    closes_at: datetime,
    rule: str = QuizRule.FIRST,
    prize: str = "",
    questions: Iterable[QuestionIn],
) -> Quiz:
    """The quiz of a quiz campaign: its questions (replacing any), time window and winner rule."""
    if campaign.kind != CampaignKind.QUIZ:
        raise ValidationError("Only a quiz campaign has questions.")
    if not campaign.is_draft:
        raise ValidationError("This quiz has been sent: its questions can no longer change.")
    questions = [q for q in questions if q.text.strip()]
    errors: dict[str, list[str]] = {}
    if not questions:
        errors["questions"] = ["Write at least one question."]
    if len(questions) > MAX_QUESTIONS:
        errors["questions"] = [f"At most {MAX_QUESTIONS} questions."]
    for i, q in enumerate(questions, 1):
        choices = [c.strip() for c in q.choices if c.strip()]
        if not 2 <= len(choices) <= 6:
            errors.setdefault("questions", []).append(f"Question {i}: give 2 to 6 choices.")
        elif not 0 <= q.correct < len(choices):
            errors.setdefault("questions", []).append(f"Question {i}: say which choice is right.")
        try:
            no_patient_identifiers(q.text + " " + " ".join(choices))
        except ValidationError as exc:
            errors.setdefault("questions", []).append(f"Question {i}: {exc.messages[0]}")
    if closes_at <= timezone.now():
        errors["closes_at"] = ["The quiz must close in the future."]
    if rule not in QuizRule.values:
        errors["rule"] = [f"Unknown rule {rule!r}."]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        quiz = Quiz.objects.filter(campaign=campaign).first() or Quiz(campaign=campaign)
        quiz = save_with_audit(
            quiz, {"closes_at": closes_at, "rule": rule, "prize": prize.strip()}, actor=actor
        )
        before = list(quiz.questions.values_list("text", flat=True))
        quiz.questions.all().delete()
        Question.objects.bulk_create(
            Question(
                quiz=quiz,
                position=i,
                text=q.text.strip(),
                choices=[c.strip() for c in q.choices if c.strip()],
                correct=q.correct,
            )
            for i, q in enumerate(questions, 1)
        )
        after = [q.text.strip() for q in questions]
        if before != after:
            record(actor, "update", quiz, changes={"questions": [before, after]})
    return quiz


def save_event(
    campaign: Campaign,
    *,
    actor: Any,
    kind: str,
    starts_at: datetime,
    ends_at: datetime | None = None,
    site: Location | None = None,
    venue: str = "",
    capacity: int | None = None,
    speakers: Iterable[Provider] = (),
) -> Event:
    if campaign.kind != CampaignKind.EVENT:
        raise ValidationError("Only an event invitation has an event.")
    speakers = list(speakers)
    errors: dict[str, list[str]] = {}
    if ends_at is not None and ends_at <= starts_at:
        errors["ends_at"] = ["The event ends after it starts."]
    if site is not None and not site.practice.is_ours:
        errors["site"] = ["Pick one of our sites (or write the venue)."]
    if not site and not venue.strip():
        errors["venue"] = ["Say where: one of our sites, or the venue."]
    if any(not p.is_ours for p in speakers):
        errors["speakers"] = ["Speakers are our physicians."]
    if campaign.is_draft and starts_at <= timezone.now():
        errors["starts_at"] = ["The event must be in the future."]
    if errors:
        raise ValidationError(errors)
    event = Event.objects.filter(campaign=campaign).first() or Event(campaign=campaign)
    return save_with_audit(
        event,
        {
            "kind": kind,
            "starts_at": starts_at,
            "ends_at": ends_at,
            "site": site,
            "venue": venue.strip(),
            "capacity": capacity,
        },
        actor=actor,
        m2m={"speakers": speakers},
    )


def _local(dt: datetime) -> str:
    return date_format(timezone.localtime(dt), "l, F j, Y, g:i A")


def campaign_values(campaign: Campaign) -> dict[str, str]:
    """The campaign-wide merge values (the same for every recipient)."""
    values: dict[str, Any] = {"organisation.name": organisation_name()}
    physician = campaign.featured_physician
    if physician is not None:
        values["physician.name"] = f"Dr. {physician.first_name} {physician.last_name}"
        values["physician.specialty"] = physician.primary_taxonomy.name if physician.primary_taxonomy else ""
    event = getattr(campaign, "event", None) if campaign.kind == CampaignKind.EVENT else None
    if event is not None:
        values["event.name"] = campaign.name
        values["event.when"] = _local(event.starts_at)
        values["event.where"] = event.where
    quiz = getattr(campaign, "quiz", None) if campaign.kind == CampaignKind.QUIZ else None
    if quiz is not None:
        values["quiz.closes"] = _local(quiz.closes_at)
        values["quiz.prize"] = quiz.prize or "a small prize"
    return merge.only_allowed(values)


def person_values(member: segments.Member, fallback_liaison: User | None = None) -> dict[str, str]:
    """A person's merge values, from the allow-list only (stored on the recipient row)."""
    liaison_name = member.liaison_name or (fallback_liaison.full_name if fallback_liaison else "")
    liaison_email = member.liaison_email or (fallback_liaison.email if fallback_liaison else "")
    return merge.only_allowed(
        {
            "recipient.first_name": member.first_name,
            "recipient.last_name": member.last_name,
            "recipient.name": member.name,
            "recipient.salutation": member.salutation,
            "recipient.title": member.title,
            "practice.name": member.practice_name,
            "practice.city": member.practice_city,
            "liaison.name": liaison_name,
            "liaison.email": liaison_email,
        }
    )


def problems(campaign: Campaign, now: datetime | None = None) -> list[str]:
    """What stops this campaign from being sent now (empty: ready)."""
    now = now or timezone.now()
    out: list[str] = []
    template = campaign.template
    texts = " ".join([template.subject, template.body_text, template.body_html])
    used = set(merge.fields_used(texts))
    try:
        merge.check_text(texts, "template")
    except ValidationError as exc:
        out.extend(exc.message_dict["template"])
    if any(f.startswith("physician.") for f in used) and campaign.featured_physician is None:
        out.append("The template names our physician: choose the physician.")
    if campaign.kind == CampaignKind.QUIZ:
        quiz = Quiz.objects.filter(campaign=campaign).first()
        if quiz is None or not quiz.questions.exists():
            out.append("Write the quiz's questions.")
        elif quiz.closes_at <= now:
            out.append("The quiz's closing time has passed: set a new one.")
        if "links.quiz" not in used:
            out.append("A quiz email must contain {{ links.quiz }} (each recipient's link to answer).")
    elif "links.quiz" in used or any(f.startswith("quiz.") for f in used):
        out.append("Only a quiz campaign can use {{ quiz.… }} and {{ links.quiz }}.")
    if campaign.kind == CampaignKind.EVENT:
        event = Event.objects.filter(campaign=campaign).first()
        if event is None:
            out.append("Say when and where the event is.")
        elif event.starts_at <= now:
            out.append("The event has already started.")
        if "links.rsvp" not in used:
            out.append("An invitation must contain {{ links.rsvp }} (each recipient's RSVP link).")
    elif "links.rsvp" in used or any(f.startswith("event.") for f in used):
        out.append("Only an event invitation can use {{ event.… }} and {{ links.rsvp }}.")
    if not campaign.is_letter:
        if not postal_address():
            out.append(
                "Set LIAISON_POSTAL_ADDRESS (or add one of our sites): every email carries a postal address."
            )
        if not organisation_name():
            out.append("Set LIAISON_ORGANISATION_NAME (or add our practice): every email names the sender.")
    return out


@dataclass
class SendCounts:
    members: int = 0
    no_email: int = 0
    no_consent: int = 0
    suppressed: int = 0
    duplicates: int = 0
    no_address: int = 0
    recipients: int = 0


def _recipient_rows(
    campaign: Campaign, members: list[segments.Member], fallback: User | None
) -> tuple[list[Recipient], SendCounts]:
    audit = SendCounts(members=len(members))
    rows: list[Recipient] = []
    if campaign.is_letter:
        for m in members:
            if m.location_id is None:
                audit.no_address += 1
                continue
            rows.append(_row(campaign, m, fallback, email=""))
    else:
        suppressed = set(Suppression.objects.values_list("email", flat=True))
        seen: set[str] = set()
        for m in members:
            if not m.email:
                audit.no_email += 1
            elif not m.consent:
                audit.no_consent += 1
            elif m.email in suppressed:
                audit.suppressed += 1
            elif m.email in seen:
                audit.duplicates += 1
            else:
                seen.add(m.email)
                rows.append(_row(campaign, m, fallback, email=m.email))
    audit.recipients = len(rows)
    return rows, audit


def _row(campaign: Campaign, m: segments.Member, fallback: User | None, *, email: str) -> Recipient:
    return Recipient(
        campaign=campaign,
        contact_id=m.pk if m.kind == "contact" else None,
        provider_id=m.pk if m.kind == "provider" else None,
        practice_id=m.practice_id,
        location_id=m.location_id,
        account_id=m.account_id,
        name=m.name[:200],
        email=email,
        merge=person_values(m, fallback),
    )


def prepare_send(campaign: Campaign, *, actor: Any, now: datetime | None = None) -> SendCounts:
    """Freeze what is sent, evaluate the segment now and queue one recipient per address.

    People without an email address or consent, suppressed addresses (unsubscribed or bounced,
    in any campaign) and second people sharing an address are counted, not queued."""
    now = now or timezone.now()
    with transaction.atomic():
        campaign = (
            Campaign.objects.select_for_update().select_related("template", "segment").get(pk=campaign.pk)
        )
        if not campaign.is_draft:
            raise ValidationError("This campaign has already been sent.")
        found = problems(campaign, now)
        if found:
            raise ValidationError(found)
        members = segments.evaluate(campaign.segment)
        rows, audit = _recipient_rows(campaign, members, _user(actor))
        if not rows:
            raise ValidationError(
                "Nobody in this segment can receive it "
                + (
                    "(no office address)."
                    if campaign.is_letter
                    else f"({audit.no_email} without email, {audit.no_consent} without consent, "
                    f"{audit.suppressed} unsubscribed or bounced)."
                )
            )
        template = campaign.template
        Recipient.objects.bulk_create(rows, batch_size=500)
        fields = {
            "status": CampaignStatus.SENDING,
            "subject": template.subject,
            "body_text": template.body_text,
            "body_html": template.body_html if not campaign.is_letter else "",
            "from_email": settings.LIAISON_CAMPAIGN_FROM,
            "sender_name": organisation_name(),
            "postal_address": postal_address(),
            "tracking": settings.LIAISON_CAMPAIGN_TRACKING and not campaign.is_letter,
            "merge_values": campaign_values(campaign),
            "audience": audit.__dict__,
            "started_at": now,
            # Reserved for the first sender, so that the resume job does not start a second one.
            "lease_until": now + timedelta(seconds=settings.LIAISON_CAMPAIGN_LEASE_SECONDS),
        }
        for k, v in fields.items():
            setattr(campaign, k, v)
        campaign.save(update_fields=[*fields, "updated_at"])
        if campaign.kind == CampaignKind.QUIZ:
            Quiz.objects.filter(campaign=campaign).update(opens_at=now)
        record(actor, "send", campaign, changes={"segment": campaign.segment_id, **audit.__dict__})
    return audit


def start_send(campaign: Campaign, *, actor: Any) -> JobRun:
    """Queue the campaign and start the background job that sends it (progress on its JobRun page)."""
    from liaison.campaigns.tasks import print_letters, send_campaign

    with transaction.atomic():
        audit = prepare_send(campaign, actor=actor)
        campaign.refresh_from_db()
        verb = "Print" if campaign.is_letter else "Send"
        run = start_job(
            kind="campaign",
            label=f"{verb} '{campaign.name}' ({audit.recipients} recipients)",
            actor=_user(actor),
            task=print_letters if campaign.is_letter else send_campaign,
            campaign_id=campaign.pk,
        )
        Campaign.objects.filter(pk=campaign.pk).update(job_run=run)
        campaign.job_run = run
    return run


def stop_send(campaign: Campaign, *, actor: Any) -> int:
    """Stop a send: what is still queued is not sent. Returns how many were left unsent."""
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if campaign.status != CampaignStatus.SENDING:
            raise ValidationError("This campaign is not sending.")
        n = Recipient.objects.filter(campaign=campaign, status=RecipientStatus.QUEUED).update(
            status=RecipientStatus.SKIPPED, reason=f"Not sent: stopped by {_label(actor)}."
        )
        Campaign.objects.filter(pk=campaign.pk).update(
            status=CampaignStatus.STOPPED, finished_at=timezone.now(), sender_token="", lease_until=None
        )
        if campaign.job_run_id:
            JobRun.objects.filter(pk=campaign.job_run_id, status__in=["queued", "running"]).update(
                status=JobRun.Status.SUCCEEDED, message=f"Stopped: {n} not sent.", finished_at=timezone.now()
            )
        record(actor, "stop", campaign, changes={"not_sent": n})
    return n


def resend_uncertain(campaign: Campaign, *, actor: Any) -> JobRun | None:
    """A person's choice: send again the messages whose delivery is unknown (the sender stopped
    mid-message). Some may then arrive twice; they carry the same Message-ID."""
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if campaign.status == CampaignStatus.SENDING:
            raise ValidationError("Wait until the send has finished.")
        if campaign.is_letter:
            raise ValidationError("Letters are printed, not sent.")
        n = Recipient.objects.filter(campaign=campaign, status=RecipientStatus.UNCERTAIN).update(
            status=RecipientStatus.QUEUED, claimed_by="", next_attempt_at=None, reason="sent again on request"
        )
        if not n:
            return None
        from liaison.campaigns.tasks import send_campaign

        run = start_job(
            kind="campaign",
            label=f"Send '{campaign.name}' again to {n} uncertain recipient(s)",
            actor=_user(actor),
            task=send_campaign,
            campaign_id=campaign.pk,
        )
        Campaign.objects.filter(pk=campaign.pk).update(
            status=CampaignStatus.SENDING, job_run=run, finished_at=None, lease_until=None
        )
        record(actor, "resend_uncertain", campaign, changes={"recipients": n})
    return run


def resume_sends(*, wait: bool = False) -> list[int]:
    """Start a sender for every campaign still sending whose sender is gone (its lease expired)
    or whose retries are due. `wait`: also wait for leases about to expire (just after a crash)."""
    from liaison.campaigns.tasks import print_letters, send_campaign

    resumed = []
    for campaign in Campaign.objects.filter(status=CampaignStatus.SENDING).order_by("pk"):
        now = timezone.now()
        if campaign.retry_at and campaign.retry_at > now:
            continue
        if campaign.lease_until and campaign.lease_until > now:
            if not wait:
                continue
            time.sleep((campaign.lease_until - now).total_seconds() + 0.05)
        run_id = campaign.job_run_id
        if run_id is None:
            run = JobRun.objects.create(kind="campaign", label=f"Send '{campaign.name}' (resumed)")
            Campaign.objects.filter(pk=campaign.pk).update(job_run=run)
            run_id = run.pk
        task = print_letters if campaign.is_letter else send_campaign
        enqueue_on_commit(task, job_run_id=run_id, campaign_id=campaign.pk)
        resumed.append(campaign.pk)
    return resumed


# Unsubscribes, bounces, the suppression list ---------------------------------------------------------


def _withdraw_consent(email: str, *, actor: Any) -> None:
    """The directory's consent flag follows an unsubscribe (without re-validating the person)."""
    now = timezone.now()
    for model in (Contact, Provider):
        for person in model.objects.filter(email__iexact=email, email_consent=True):
            model.objects.filter(pk=person.pk).update(
                email_consent=False, email_consent_at=None, updated_at=now
            )
            record(actor, "update", person, changes={"email_consent": [True, False]})


def unsubscribe(recipient: Recipient, *, how: str = "link") -> Suppression:
    """The recipient asked to receive nothing more: suppressed for every campaign, at once."""
    actor = f"unsubscribe {how} (recipient {recipient.pk})"
    email = recipient.email
    if not email:
        raise ValidationError("This recipient has no email address.")
    with transaction.atomic():
        suppression, created = Suppression.objects.get_or_create(
            email=email,
            defaults={
                "reason": SuppressionReason.UNSUBSCRIBED,
                "campaign_id": recipient.campaign_id,
                "recipient": recipient,
                "detail": f"one-click ({how})",
                "actor_label": actor,
            },
        )
        if not created and suppression.reason != SuppressionReason.UNSUBSCRIBED:
            # The person's own wish outranks a bounce or a manual entry: it is never lifted by hand.
            before = suppression.reason
            suppression.reason, suppression.campaign_id, suppression.recipient = (
                SuppressionReason.UNSUBSCRIBED,
                recipient.campaign_id,
                recipient,
            )
            suppression.at, suppression.actor_label = timezone.now(), actor
            suppression.save()
            record(actor, "update", suppression, changes={"reason": [before, SuppressionReason.UNSUBSCRIBED]})
        elif created:
            record(actor, "unsubscribe", suppression, changes={"campaign": recipient.campaign_id})
        _withdraw_consent(email, actor=actor)
    return suppression


def add_suppression(email: str, *, reason: str, actor: Any, detail: str = "") -> Suppression:
    email = (email or "").strip().lower()
    if "@" not in email or len(email) > 254:
        raise ValidationError({"email": ["Enter an email address."]})
    if reason not in (SuppressionReason.BOUNCED, SuppressionReason.MANUAL, SuppressionReason.COMPLAINT):
        raise ValidationError({"reason": ["An unsubscribe comes from the person's own link."]})
    with transaction.atomic():
        existing = Suppression.objects.filter(email=email).first()
        if existing is not None:
            return existing
        suppression = Suppression.objects.create(
            email=email, reason=reason, detail=detail[:300], actor_label=_label(actor)
        )
        record(actor, "create", suppression)
    return suppression


def remove_suppression(suppression: Suppression, *, actor: Any, note: str) -> None:
    """Lift a suppression (a bounced address that works again). An unsubscribe needs the
    person's written request, noted here; only an admin may lift it (the page enforces)."""
    if not note.strip():
        raise ValidationError(
            {"note": ["Say why (e.g. the person asked in writing, the address was fixed)."]}
        )
    with transaction.atomic():
        record(
            actor, "delete", suppression, changes={"reason": suppression.reason, "note": note.strip()[:300]}
        )
        suppression.delete()


def record_bounce(
    email: str, *, actor: Any, message_id: str = "", detail: str = "", complaint: bool = False
) -> Recipient | None:
    """A bounce (or spam complaint) reported after sending: the recipient is marked bounced and
    the address suppressed. The recipient is found by the Message-ID we gave the message, else
    as the latest one sent to the address."""
    email = (email or "").strip().lower()
    reason = SuppressionReason.COMPLAINT if complaint else SuppressionReason.BOUNCED
    with transaction.atomic():
        recipient = None
        if message_id:
            recipient = Recipient.objects.filter(message_id=message_id.strip()).first()
            email = email or (recipient.email if recipient else "")
        if recipient is None and email:
            recipient = (
                Recipient.objects.filter(
                    email=email, status__in=[RecipientStatus.SENT, RecipientStatus.UNCERTAIN]
                )
                .order_by("-sent_at", "-pk")
                .first()
            )
        if not email:
            return None
        if (
            recipient is not None
            and not complaint
            and recipient.status in (RecipientStatus.SENT, RecipientStatus.UNCERTAIN)
        ):
            Recipient.objects.filter(pk=recipient.pk).update(
                status=RecipientStatus.BOUNCED, reason=detail[:300]
            )
            DeliveryAttempt.objects.create(
                recipient=recipient, outcome=AttemptOutcome.BOUNCED, detail=detail[:300]
            )
            recipient.status = RecipientStatus.BOUNCED
        suppression, created = Suppression.objects.get_or_create(
            email=email,
            defaults={
                "reason": reason,
                "campaign_id": recipient.campaign_id if recipient else None,
                "recipient": recipient,
                "detail": detail[:300],
                "actor_label": _label(actor),
            },
        )
        if created:
            record(actor, "bounce" if not complaint else "complaint", suppression)
    return recipient


# Tracking (only when LIAISON_CAMPAIGN_TRACKING is on) ------------------------------------------------


def record_open(recipient: Recipient) -> None:
    Recipient.objects.filter(pk=recipient.pk, opened_at__isnull=True).update(opened_at=timezone.now())


def record_click(recipient: Recipient, index: int) -> str | None:
    from liaison.campaigns.mail import Content

    links = Content.of(recipient.campaign).tracked_links()
    if not 0 <= index < len(links):
        return None
    now = timezone.now()
    Recipient.objects.filter(pk=recipient.pk, clicked_at__isnull=True).update(clicked_at=now)
    Recipient.objects.filter(pk=recipient.pk, opened_at__isnull=True).update(opened_at=now)
    return links[index]


# Quizzes -----------------------------------------------------------------------------------------------


def submit_quiz_answer(
    recipient: Recipient, choices: Mapping[int, int], *, at: datetime | None = None
) -> QuizAnswer:
    """A recipient's answers: scored at once; one answer per recipient, within the quiz's window."""
    at = at or timezone.now()
    quiz = Quiz.objects.filter(campaign_id=recipient.campaign_id).first()
    if quiz is None:
        raise ValidationError("This campaign has no quiz.")
    if not quiz.is_open(at):
        raise ValidationError(
            "This quiz is closed." if quiz.opens_at and at >= quiz.closes_at else "This quiz is not open yet."
        )
    questions = list(quiz.questions.all())
    missing = [q.position for q in questions if q.pk not in choices]
    if missing:
        raise ValidationError(
            {"__all__": [f"Answer every question (missing: {', '.join(map(str, missing))})."]}
        )
    clean = {}
    for q in questions:
        value = int(choices[q.pk])
        if not 0 <= value < len(q.choices):
            raise ValidationError({"__all__": [f"Question {q.position}: pick one of the choices."]})
        clean[str(q.pk)] = value
    right = sum(1 for q in questions if clean[str(q.pk)] == q.correct)
    try:
        with transaction.atomic():
            answer = QuizAnswer.objects.create(
                quiz=quiz,
                recipient=recipient,
                choices=clean,
                correct_count=right,
                all_correct=right == len(questions),
                submitted_at=at,
            )
            record(
                f"quiz respondent (recipient {recipient.pk})", "answer", answer, changes={"correct": right}
            )
    except IntegrityError:
        raise ValidationError("You have already answered this quiz: thank you.")
    return answer


def close_quiz(quiz: Quiz, *, actor: Any, at: datetime | None = None) -> Quiz:
    at = at or timezone.now()
    if quiz.closes_at > at:
        before = quiz.closes_at
        Quiz.objects.filter(pk=quiz.pk).update(closes_at=at)
        quiz.closes_at = at
        record(actor, "close", quiz, changes={"closes_at": [str(before), str(at)]})
    return quiz


def draw_winner(quiz: Quiz, *, actor: Any, seed: str | None = None, at: datetime | None = None) -> QuizDraw:
    """Choose the winner by the quiz's rule, once, after it closes; the draw row and the audit row
    say how (rule, candidates in order, seed), so anyone can check it (`verify_draw`)."""
    at = at or timezone.now()
    with transaction.atomic():
        quiz = Quiz.objects.select_for_update().get(pk=quiz.pk)
        if QuizDraw.objects.filter(quiz=quiz).exists():
            raise ValidationError("The winner has already been drawn.")
        if quiz.closes_at > at:
            raise ValidationError("The quiz is still open: close it first.")
        if quiz.rule == QuizRule.FIRST:
            candidates = list(
                quiz.answers.filter(all_correct=True)
                .order_by("submitted_at", "pk")
                .values_list("pk", flat=True)
            )
            seed = ""
            winner_id = candidates[0] if candidates else None
        else:
            candidates = list(
                quiz.answers.filter(all_correct=True).order_by("pk").values_list("pk", flat=True)
            )
            seed = seed or secrets.token_hex(8)
            winner_id = random.Random(seed).choice(candidates) if candidates else None
        draw = QuizDraw.objects.create(
            quiz=quiz,
            rule=quiz.rule,
            seed=seed,
            candidates=candidates,
            winner_id=winner_id,
            drawn_at=at,
            drawn_by=_user(actor),
            actor_label=_label(actor),
        )
        winner = QuizAnswer.objects.filter(pk=winner_id).values_list("recipient_id", flat=True).first()
        record(
            actor,
            "draw",
            quiz,
            changes={
                "rule": quiz.rule,
                "seed": seed,
                "candidates": candidates,
                "winner_answer": winner_id,
                "winner_recipient": winner,
            },
        )
    return draw


def verify_draw(draw: QuizDraw) -> bool:
    """Recompute the draw from what it recorded (and the answers, for the first-correct rule)."""
    if not draw.candidates:
        return draw.winner_id is None
    if draw.rule == QuizRule.FIRST:
        first = (
            QuizAnswer.objects.filter(quiz_id=draw.quiz_id, all_correct=True)
            .order_by("submitted_at", "pk")
            .values_list("pk", flat=True)
            .first()
        )
        return first == draw.winner_id == draw.candidates[0]
    return random.Random(draw.seed).choice(draw.candidates) == draw.winner_id


# Events -------------------------------------------------------------------------------------------------


def record_rsvp(recipient: Recipient, answer: str, *, at: datetime | None = None) -> Rsvp:
    at = at or timezone.now()
    if answer not in RsvpAnswer.values:
        raise ValidationError({"answer": ["Answer yes or no."]})
    event = Event.objects.filter(campaign_id=recipient.campaign_id).first()
    if event is None:
        raise ValidationError("This campaign is not an invitation.")
    if event.starts_at <= at:
        raise ValidationError("This event has already taken place.")
    with transaction.atomic():
        rsvp = Rsvp.objects.create(recipient=recipient, answer=answer, at=at)
        record(f"invitee (recipient {recipient.pk})", "rsvp", rsvp, changes={"answer": answer})
    return rsvp


def _account_for(recipient: Recipient, *, actor: Any, note: str) -> Account:
    if recipient.account_id:
        return recipient.account
    location = recipient.location
    practice = recipient.practice or (location.practice if location else None)
    if practice is None:
        raise ValidationError("This person's office is no longer in the directory.")
    account = outreach.find_account(practice, location) or outreach.add_to_pipeline(
        practice, actor=actor, note=note
    )
    Recipient.objects.filter(pk=recipient.pk).update(account=account)
    return account


def _person(recipient: Recipient) -> tuple[list[Provider], list[Contact]]:
    if recipient.provider_id:
        return [recipient.provider], []
    if recipient.contact_id:
        return [], [recipient.contact]
    raise ValidationError("This person is no longer in the directory.")


def check_in(recipient: Recipient, *, actor: Any, at: datetime | None = None) -> Attendance:
    """Someone invited came: the attendance, logged on their office's account as an event activity
    (one activity per office and event; each person who came is an attendee)."""
    at = at or timezone.now()
    existing = Attendance.objects.filter(recipient=recipient).first()
    if existing is not None:
        return existing
    event = Event.objects.select_related("campaign").filter(campaign_id=recipient.campaign_id).first()
    if event is None:
        raise ValidationError("This campaign is not an invitation.")
    if at < event.starts_at - timedelta(hours=12):
        raise ValidationError("Check-in opens on the day of the event.")
    providers, contacts = _person(recipient)
    with transaction.atomic():
        account = _account_for(recipient, actor=actor, note=f"attended {event.campaign.name}")
        same_office = (
            Attendance.objects.filter(event=event, recipient__account=account, activity__isnull=False)
            .select_related("activity")
            .first()
        )
        if same_office is not None:
            activity = same_office.activity
            current = list(
                activity.attendees.filter(is_ours=False).select_related("provider", "contact__practice")
            )
            outreach.update_activity(
                activity,
                actor=actor,
                providers=[a.provider for a in current if a.provider_id] + providers,
                contacts=[a.contact for a in current if a.contact_id] + contacts,
            )
        else:
            when = min(at, event.starts_at)
            activity = outreach.log_activity(
                actor=actor,
                account=account,
                kind=ActivityKind.EVENT,
                occurred_at=when,
                liaison=_user(actor),
                our_physicians=list(event.speakers.all()),
                providers=providers,
                contacts=contacts,
                purpose=Purpose.EDUCATION,
                topics=f"{event.get_kind_display()}: {event.campaign.name}",
                location=None,
            )
        attendance = Attendance.objects.create(
            event=event, recipient=recipient, activity=activity, checked_in_at=at, checked_in_by=_user(actor)
        )
        record(actor, "check_in", attendance, changes={"activity": activity.pk})
    return attendance


def undo_check_in(attendance: Attendance, *, actor: Any) -> None:
    """A check-in made by mistake: the person leaves the office's event activity (cancelled when
    nobody from the office is left)."""
    with transaction.atomic():
        activity = attendance.activity
        recipient = attendance.recipient
        record(actor, "undo_check_in", attendance)
        attendance.delete()
        if activity is None:
            return
        rest = [
            a
            for a in Attendee.objects.filter(activity=activity, is_ours=False).select_related(
                "provider", "contact__practice"
            )
            if not (
                (recipient.provider_id and a.provider_id == recipient.provider_id)
                or (recipient.contact_id and a.contact_id == recipient.contact_id)
            )
        ]
        if rest:
            outreach.update_activity(
                activity,
                actor=actor,
                providers=[a.provider for a in rest if a.provider_id],
                contacts=[a.contact for a in rest if a.contact_id],
            )
        else:
            outreach.update_activity(activity, actor=actor, status="cancelled")


# Letters ------------------------------------------------------------------------------------------------


def log_letter(recipient: Recipient, *, actor: Any) -> Recipient:
    """One printed letter, logged on the office's account timeline (an outreach activity of kind
    letter); idempotent: a letter already logged is left alone."""
    with transaction.atomic():
        row = (
            Recipient.objects.select_for_update(of=("self",))
            .select_related("campaign", "provider", "contact__practice", "account", "practice", "location")
            .get(pk=recipient.pk)
        )
        if row.status == RecipientStatus.PRINTED:
            return row
        providers, contacts = _person(row)
        account = _account_for(row, actor=actor, note=f"letter: {row.campaign.name}")
        activity = outreach.log_activity(
            actor=actor,
            account=account,
            kind=ActivityKind.LETTER,
            liaison=_user(actor),
            providers=providers,
            contacts=contacts,
            topics=f"Letter: {row.campaign.name}",
        )
        Recipient.objects.filter(pk=row.pk).update(
            status=RecipientStatus.PRINTED, activity=activity, sent_at=timezone.now(), attempts=1
        )
        row.status, row.activity = RecipientStatus.PRINTED, activity
    return row


# Demo and tests: a send with a given connection, without a job --------------------------------------


def deliver_now(campaign: Campaign, *, connection: Any = None, rate: float = 0) -> Any:
    from liaison.campaigns.sending import deliver

    return deliver(campaign.pk, connection=connection, rate=rate)
