"""The referring-office portal: an office contact signs in with a one-time emailed link, submits
referrals (with documents) and follows the referrals their office sent. Nothing else.

The portal session is separate from staff accounts (a session key, not a User); it lasts two
hours. Link requests are rate-limited per address and per email; every step is audited.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from functools import wraps
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from liaison.audit.services import record
from liaison.core.forms import apply_errors
from liaison.core.pagination import paginate
from liaison.directory.models import Contact, Provider
from liaison.referrals import services
from liaison.referrals.models import Channel, PortalToken, Referral

SESSION_KEY = "portal_contact"
LINK_MINUTES = 30
SESSION_HOURS = 2
LIMIT_PER_EMAIL = 3  # links per hour
LIMIT_PER_ADDRESS = 10


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _throttled(key: str, limit: int) -> bool:
    cache.add(key, 0, 3600)
    try:
        return cache.incr(key) > limit
    except ValueError:
        return False


def _actor(contact: Contact) -> str:
    return f"portal:{contact.email}"


@transaction.atomic
def send_link(email: str, ip: str) -> bool:
    """Email a sign-in link if the address belongs to a referring-office contact. The caller says
    the same thing either way, so the form cannot be used to find out who is known."""
    email = email.strip().lower()
    if _throttled(f"portal:ip:{ip}", LIMIT_PER_ADDRESS) or _throttled(
        f"portal:email:{email}", LIMIT_PER_EMAIL
    ):
        record(None, "portal_throttled", object_type="directory.contact", object_repr=email[:200])
        return False
    contact = Contact.objects.filter(email__iexact=email, is_active=True, practice__is_ours=False).first()
    if contact is None:
        return False
    raw = secrets.token_urlsafe(32)
    PortalToken.objects.create(
        contact=contact, digest=_digest(raw), expires_at=timezone.now() + timedelta(minutes=LINK_MINUTES)
    )
    link = settings.LIAISON_BASE_URL.rstrip("/") + reverse("portal:login", args=[raw])
    send_mail(
        "Your sign-in link to the referral portal",
        f"Hello {contact.first_name},\n\nSign in to the referral portal of {services_org_name()} with this link "
        f"(valid {LINK_MINUTES} minutes, once):\n{link}\n\nIf you did not ask for it, ignore this email.\n",
        None,
        [contact.email],
    )
    record(_actor(contact), "portal_link_sent", contact)
    return True


def services_org_name() -> str:
    from liaison.referrals.notifications import _organisation_name

    return _organisation_name()


def portal_contact(request: HttpRequest) -> Contact | None:
    data = request.session.get(SESSION_KEY)
    if not data or data.get("expires", 0) < timezone.now().timestamp():
        return None
    return Contact.objects.select_related("practice").filter(pk=data["id"], is_active=True).first()


def contact_required(view: Any) -> Any:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        contact = portal_contact(request)
        if contact is None:
            request.session.pop(SESSION_KEY, None)
            return redirect("portal:start")
        return view(request, contact, *args, **kwargs)

    return wrapper


class EmailForm(forms.Form):
    email = forms.EmailField(label="Your work email")


@require_http_methods(["GET", "POST"])
def start(request: HttpRequest) -> HttpResponse:
    form = EmailForm(request.POST or None)
    sent = False
    if request.method == "POST" and form.is_valid():
        send_link(form.cleaned_data["email"], request.META.get("REMOTE_ADDR", ""))
        sent = True
    return render(request, "portal/start.html", {"form": form, "sent": sent})


@require_http_methods(["GET", "POST"])
def login(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a button (mail scanners that open links do not use the token up); POST signs in."""
    found = PortalToken.objects.select_related("contact").filter(digest=_digest(token[:100])).first()
    valid = (
        found is not None
        and found.used_at is None
        and found.expires_at > timezone.now()
        and found.contact.is_active
    )
    if request.method == "POST" and valid:
        PortalToken.objects.filter(pk=found.pk).update(used_at=timezone.now())
        request.session.cycle_key()
        request.session[SESSION_KEY] = {
            "id": found.contact_id,
            "expires": (timezone.now() + timedelta(hours=SESSION_HOURS)).timestamp(),
        }
        record(_actor(found.contact), "portal_login", found.contact)
        return redirect("portal:referrals")
    return render(request, "portal/login.html", {"valid": valid}, status=200 if valid else 410)


@require_http_methods(["POST"])
def logout(request: HttpRequest) -> HttpResponse:
    request.session.pop(SESSION_KEY, None)
    return redirect("portal:start")


@contact_required
def referrals(request: HttpRequest, contact: Contact) -> HttpResponse:
    qs = (
        Referral.objects.filter(referring_location__practice=contact.practice)
        .select_related("referring_provider")
        .order_by("-received_at")
    )
    page = paginate(request, qs, 25)
    ids = [r.pk for r in page.object_list]
    if ids:
        record(
            _actor(contact),
            "view_list",
            object_type="referrals.referral",
            object_repr=f"portal: {len(ids)} referrals",
            phi=True,
            changes={"ids": ids},
        )
    return render(request, "portal/referrals.html", {"contact": contact, "page": page})


class PortalReferralForm(forms.Form):
    patient_first_name = forms.CharField(label="Patient first name", max_length=100)
    patient_last_name = forms.CharField(label="Patient last name", max_length=100)
    patient_dob = forms.DateField(label="Date of birth", widget=forms.DateInput(attrs={"type": "date"}))
    patient_phone = forms.CharField(label="Patient phone", max_length=30, required=False)
    payer = forms.CharField(max_length=100, required=False)
    member_id = forms.CharField(label="Member id", max_length=50, required=False)
    referring_provider = forms.ModelChoiceField(queryset=Provider.objects.none(), label="Referring provider")
    urgency = forms.ChoiceField(choices=[("routine", "Routine"), ("urgent", "Urgent")])
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), label="Reason for referral")
    document = forms.FileField(required=False, help_text="notes, imaging report (PDF or image)")

    def __init__(self, *args: Any, contact: Contact, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["referring_provider"].queryset = Provider.objects.filter(
            locations__practice=contact.practice
        ).distinct()


@contact_required
def new_referral(request: HttpRequest, contact: Contact) -> HttpResponse:
    form = PortalReferralForm(request.POST or None, request.FILES or None, contact=contact)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        provider = d.pop("referring_provider")
        upload = d.pop("document")
        location = provider.locations.filter(practice=contact.practice).first()
        try:
            with transaction.atomic():
                referral = services.receive_referral(
                    actor=_actor(contact),
                    referring_provider=provider,
                    referring_location=location,
                    channel=Channel.PORTAL,
                    **d,
                )
                if upload:
                    services.attach_document(
                        referral,
                        actor=_actor(contact),
                        name=upload.name,
                        content=upload.read(),
                        content_type=upload.content_type or "",
                    )
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, f"Referral #{referral.pk} sent. We will keep you informed.")
            return redirect("portal:referrals")
    return render(request, "portal/new.html", {"contact": contact, "form": form})
