"""Keeping the referring office informed: a letter/fax PDF, a PHI-free email, or a FHIR Task update.

The office's preference is on its location (`OfficePreference`); without one, a letter is
prepared (most offices still take faxes). Every notification is a `Notification` row and an event
on the referral's timeline. Emails never carry patient data: they say that a referral changed and
link to the portal, where the office signs in to see which one.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.mail import EmailMessage
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from fpdf import FPDF

from liaison.audit.services import record
from liaison.core.phi import encrypt_bytes
from liaison.referrals.models import (
    DeclineReason,
    EventKind,
    Notification,
    NotifyBy,
    OfficePreference,
    ReferralEvent,
    Status,
)

logger = logging.getLogger(__name__)

MILESTONE_SENTENCES = {
    Status.RECEIVED: "We have received your referral and will contact the patient shortly.",
    Status.SCHEDULED: "The patient is scheduled to be seen on {appointment}.",
    Status.SEEN: "The patient was seen on {seen}. The consult note will follow.",
    Status.NO_SHOW: "The patient did not come to the appointment of {appointment}. We are reaching out to reschedule.",
    Status.NOTE_SENT: "The consult note was sent on {note_sent}{included}.",
    Status.DECLINED: "We are unable to see the patient for this referral ({reason}). Please refer the "
    "patient to another provider, or call us to discuss.",
    Status.CANCELLED: "This referral was cancelled on {cancelled}; the patient has no appointment with us. "
    "Call us if the patient still needs to be seen.",
}
INCLUDED_LABELS = {
    "consult_note": "consult note",
    "prescriptions": "prescriptions written",
    "orders": "orders",
    "recommendations": "recommendations for follow-up",
    "imaging": "imaging results",
    "work_note": "work/school note",
}


def _fmt(value: Any) -> str:
    return (
        timezone.localtime(value).strftime("%A %B %-d, %Y at %-I:%M %p")
        if value
        else "(date to be confirmed)"
    )


def milestone_sentence(event: ReferralEvent) -> str:
    referral = event.referral
    included = event.data.get("included") or []
    reason = event.data.get("decline_reason", "")
    return MILESTONE_SENTENCES[event.to_status].format(
        reason=DeclineReason(reason).label.lower() if reason in DeclineReason.values else "no reason given",
        cancelled=f"{timezone.localtime(event.at):%A %B %-d, %Y}",
        appointment=_fmt(referral.appointment_at),
        seen=_fmt(referral.seen_at),
        note_sent=_fmt(referral.note_sent_at),
        included=(", with " + ", ".join(INCLUDED_LABELS.get(i, i) for i in included)) if included else "",
    )


def _organisation_name() -> str:
    from liaison.directory.models import Practice

    ours = Practice.objects.ours().order_by("pk").first()
    return settings.LIAISON_ORGANISATION_NAME or (ours.name if ours else "Our practice")


def letter_pdf(event: ReferralEvent) -> bytes:
    """A one-page, fax-ready letter to the referring provider about their patient."""
    referral = event.referral
    pdf = FPDF(format="Letter")
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 15)
    pdf.cell(0, 9, _organisation_name(), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    site = referral.site
    if site is not None:
        pdf.cell(
            0,
            5,
            f"{site.address_line1}, {site.city}, {site.state} {site.zip_code}  Phone {site.phone}  Fax {site.fax}",
            new_x="LMARGIN",
            new_y="NEXT",
        )
    pdf.ln(6)
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 7, f"Referral update: {Status(event.to_status).label}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    pdf.cell(0, 6, f"Date: {timezone.localdate():%B %-d, %Y}", new_x="LMARGIN", new_y="NEXT")
    to = (
        referral.referring_provider.display_name
        if referral.referring_provider
        else referral.referrer_as_received.get("last_name", "Referring provider")
    )
    pdf.cell(0, 6, f"To: {to}", new_x="LMARGIN", new_y="NEXT")
    if referral.referring_location is not None:
        pdf.cell(
            0,
            6,
            f"Fax: {referral.referring_location.fax or '(no fax on file)'}",
            new_x="LMARGIN",
            new_y="NEXT",
        )
    pdf.ln(4)
    pdf.cell(
        0,
        6,
        f"Patient: {referral.patient_name}    Date of birth: {referral.patient_dob:%m/%d/%Y}",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.cell(
        0,
        6,
        f"Referred on: {timezone.localtime(referral.received_at):%m/%d/%Y}    Our reference: {referral.pk}",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    if referral.referred_to_physician is not None:
        pdf.cell(
            0, 6, f"Physician: {referral.referred_to_physician.display_name}", new_x="LMARGIN", new_y="NEXT"
        )
    pdf.ln(4)
    pdf.multi_cell(0, 6, milestone_sentence(event))
    pdf.ln(4)
    pdf.multi_cell(
        0, 6, "Thank you for the referral. Questions: call our referral coordinators at the number above."
    )
    pdf.ln(8)
    pdf.set_font("Helvetica", "I", 8)
    pdf.multi_cell(
        0,
        4,
        "CONFIDENTIAL: this fax contains protected health information for the addressee only. "
        "If you received it in error, notify the sender and destroy it.",
    )
    return bytes(pdf.output())


def _email(event: ReferralEvent, preference: OfficePreference) -> tuple[str, str]:
    contact = preference.contact
    if contact is None or not contact.email:
        return "", "no email address on file for this office"
    portal = settings.LIAISON_BASE_URL.rstrip("/") + reverse("portal:start")
    body = (
        f"Hello {contact.first_name},\n\n"
        f"A referral your office sent to {_organisation_name()} has a new status: {Status(event.to_status).label.lower()}.\n"
        f"For your patient's privacy this email does not say who. Sign in to see it: {portal}\n\n"
        f"Reference number: {event.referral.pk}\n"
    )
    message = EmailMessage(
        subject=f"Referral update: {Status(event.to_status).label.lower()} (ref. {event.referral.pk})",
        body=body,
        to=[contact.email],
    )
    message.send()
    return contact.email, ""


def _fhir(event: ReferralEvent, preference: OfficePreference) -> tuple[str, str]:
    from liaison.interop.fhir import task_resource

    if not preference.fhir_endpoint:
        # The referring system reads GET /fhir/Task/{id}; nothing to push.
        return "", "available at GET /fhir/Task"
    url = preference.fhir_endpoint.rstrip("/") + f"/Task/liaison-{event.referral.pk}"
    body = json.dumps(task_resource(event.referral)).encode()
    if not url.startswith(("https://", "http://")):
        return "", "the FHIR endpoint must be an http(s) URL"
    headers = {"Content-Type": "application/fhir+json"}
    request = urllib.request.Request(url, data=body, method="PUT", headers=headers)  # noqa: S310 (checked above)
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return url, f"HTTP {response.status}"


@transaction.atomic
def notify(event: ReferralEvent) -> Notification | None:
    """Send (or prepare) the notification of one milestone; doing it twice sends it once."""
    referral = event.referral
    location = referral.referring_location
    preference = getattr(location, "referral_preference", None) if location else None
    channel = preference.notify_by if preference else NotifyBy.LETTER
    if channel == NotifyBy.NONE or location is None:
        return None
    existing = Notification.objects.filter(event=event, channel=channel).first()
    if existing is not None:
        return existing
    notification = Notification(referral=referral, event=event, milestone=event.to_status, channel=channel)
    try:
        if channel == NotifyBy.LETTER:
            notification.document.save(
                f"{referral.pk}-{event.pk}.bin", ContentFile(encrypt_bytes(letter_pdf(event))), save=False
            )
            notification.recipient = location.fax
            notification.outcome = Notification.Outcome.READY
        elif channel == NotifyBy.EMAIL:
            notification.recipient, problem = _email(event, preference)
            notification.outcome = Notification.Outcome.FAILED if problem else Notification.Outcome.SENT
            notification.detail = problem
        else:
            notification.recipient, notification.detail = _fhir(event, preference)
            notification.outcome = Notification.Outcome.SENT
        if notification.outcome == Notification.Outcome.SENT:
            notification.sent_at = timezone.now()
    except OSError as exc:
        logger.warning("notification of referral %s failed: %s", referral.pk, type(exc).__name__)
        notification.outcome = Notification.Outcome.FAILED
        notification.detail = f"could not be delivered ({type(exc).__name__})"
    notification.save()
    ReferralEvent.objects.create(
        referral=referral,
        kind=EventKind.NOTIFICATION,
        actor=None,
        actor_label="notifications",
        data={
            "notification": notification.pk,
            "milestone": event.to_status,
            "channel": channel,
            "outcome": notification.outcome,
        },
    )
    record(
        "notifications",
        "notify",
        referral,
        changes={"milestone": event.to_status, "channel": channel, "outcome": notification.outcome},
    )
    return notification
