"""Multi-factor sign-in with an authenticator app (TOTP, RFC 6238) through django-otp.

A user who has set up an app must give its 6-digit code after the password before any page;
roles listed in MFA_REQUIRED_ROLES must set one up at their first sign-in. Codes are throttled
by django-otp (growing delays after failures). API tokens are a separate credential and are
created from a verified session.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import reverse
from django_otp import devices_for_user
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from liaison.audit.services import record

# Pages a half-signed-in user may reach: the code form, set-up, sign-out, static files.
ALLOWED_PREFIXES = ("/accounts/mfa/", "/accounts/logout/", "/static/", "/healthz")


def has_mfa(user: Any) -> bool:
    return bool(getattr(user, "mfa_enabled", False))


def must_enrol(user: Any) -> bool:
    return user.role in settings.MFA_REQUIRED_ROLES and not has_mfa(user)


def pending_device(user: Any) -> TOTPDevice:
    """The unconfirmed device being set up (a new secret each time set-up starts over)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    return device or TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)


def qr_svg(device: TOTPDevice) -> str:
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue().decode()


def secret_base32(device: TOTPDevice) -> str:
    """The key as authenticator apps expect it when typed in by hand."""
    import base64

    return base64.b32encode(device.bin_key).decode().rstrip("=")


def _check(device: TOTPDevice, token: str) -> None:
    allowed, _ = device.verify_is_allowed()
    if not allowed:
        raise ValidationError({"token": ["Too many wrong codes: wait a minute and try again."]})
    if not device.verify_token((token or "").strip().replace(" ", "")):
        raise ValidationError({"token": ["That code is not right (or has expired): try the current one."]})


@transaction.atomic
def confirm_device(request: HttpRequest, device: TOTPDevice, token: str) -> None:
    _check(device, token)
    TOTPDevice.objects.filter(user=device.user, confirmed=True).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    type(device.user).objects.filter(pk=device.user_id).update(mfa_enabled=True)
    request.user.mfa_enabled = True
    otp_login(request, device)
    record(request.user, "mfa_enabled", request.user, object_repr=request.user.email)


def verify(request: HttpRequest, token: str) -> None:
    devices = list(devices_for_user(request.user, confirmed=True))
    if not devices:
        raise ValidationError({"token": ["No authenticator app is set up."]})
    try:
        _check(devices[0], token)
    except ValidationError:
        record(request.user, "mfa_failed", request.user, object_repr=request.user.email)
        raise
    otp_login(request, devices[0])
    record(request.user, "mfa_verified", request.user, object_repr=request.user.email)


@transaction.atomic
def disable(user: Any, *, actor: Any) -> None:
    """Remove a user's app (the user with a verified session, or an admin when a phone is lost)."""
    if user.role in settings.MFA_REQUIRED_ROLES and getattr(actor, "pk", None) == user.pk:
        raise ValidationError(
            {"token": ["Your role requires an authenticator app: set up a new one instead."]}
        )
    TOTPDevice.objects.filter(user=user).delete()
    type(user).objects.filter(pk=user.pk).update(mfa_enabled=False)
    user.mfa_enabled = False
    record(actor, "mfa_disabled", user, object_repr=user.email)


class MfaMiddleware:
    """After django_otp.middleware.OTPMiddleware: holds a signed-in user at the code form (or the
    set-up page when their role requires an app) until the second factor is given."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and not request.path.startswith(ALLOWED_PREFIXES):
            target = None
            if has_mfa(user):
                if not user.is_verified():
                    target = "accounts:mfa_verify"
            elif user.role in settings.MFA_REQUIRED_ROLES:
                target = "accounts:mfa"
            if target is not None:
                if request.path.startswith("/api/"):
                    return JsonResponse(
                        {"detail": "Give your authenticator code first (sign in again in the browser)."},
                        status=401,
                    )
                return HttpResponseRedirect(reverse(target) + "?next=" + request.get_full_path())
        return self.get_response(request)
