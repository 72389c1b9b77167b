"""Multi-factor sign-in: set up an authenticator app, a code at each sign-in, required roles, resets."""

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from liaison.audit.models import AuditEvent
from tests.conftest import PASSWORD


def code(device: TOTPDevice, drift: int = 0) -> str:
    """The app's code now (drift=1: the next one; a code is accepted once, like a real app's)."""
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=drift):06d}"


def sign_in(email: str) -> Client:
    c = Client()
    c.post(reverse("accounts:login"), {"username": email, "password": PASSWORD})
    return c


@pytest.fixture
def enrolled(make_user):
    user = make_user("coordinator", email="casey@example.org")
    c = sign_in("casey@example.org")
    page = c.get(reverse("accounts:mfa"))
    assert b"<svg" in page.content
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    c.post(reverse("accounts:mfa"), {"token": "000000"})
    assert not TOTPDevice.objects.filter(user=user, confirmed=True).exists()
    c.post(reverse("accounts:mfa"), {"token": code(device)})
    device.refresh_from_db()
    assert device.confirmed
    return user, device


def test_after_setting_up_an_app_each_sign_in_asks_for_a_code(enrolled):
    user, device = enrolled
    c = sign_in(user.email)
    response = c.get(reverse("referrals:queue"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:mfa_verify"))
    assert c.get("/api/v1/referrals").status_code == 401
    wrong = c.post(reverse("accounts:mfa_verify"), {"token": "123456", "next": "/referrals/"})
    assert b"That code is not right" in wrong.content
    device.refresh_from_db()
    device.throttle_reset()
    ok = c.post(reverse("accounts:mfa_verify"), {"token": code(device, drift=1), "next": "/referrals/"})
    assert ok["Location"] == "/referrals/"
    assert c.get(reverse("referrals:queue")).status_code == 200
    actions = set(AuditEvent.objects.filter(actor=user).values_list("action", flat=True))
    assert {"mfa_enabled", "mfa_failed", "mfa_verified"} <= actions


def test_the_next_url_cannot_send_the_user_elsewhere(enrolled):
    user, device = enrolled
    c = sign_in(user.email)
    response = c.post(
        reverse("accounts:mfa_verify"), {"token": code(device, drift=1), "next": "https://evil.example/"}
    )
    assert response["Location"] == "/"


@override_settings(MFA_REQUIRED_ROLES=["coordinator"])
def test_required_roles_must_set_up_an_app_before_anything_else(make_user):
    make_user("coordinator", email="casey@example.org")
    make_user("liaison", email="lee@example.org")
    c = sign_in("casey@example.org")
    response = c.get(reverse("core:home"))
    assert response["Location"].startswith(reverse("accounts:mfa"))
    assert b"Your role requires a second factor" in c.get(reverse("accounts:mfa")).content
    assert sign_in("lee@example.org").get(reverse("core:home")).status_code == 200  # not required


def test_an_admin_removes_a_lost_app(enrolled, client_for):
    user, _ = enrolled
    admin = client_for("admin")
    admin.post(reverse("accounts:mfa_reset", args=[user.pk]))
    assert not TOTPDevice.objects.filter(user=user).exists()
    assert sign_in(user.email).get(reverse("core:home")).status_code == 200
    assert AuditEvent.objects.filter(action="mfa_disabled", object_id=str(user.pk)).exists()
    assert client_for("manager").post(reverse("accounts:mfa_reset", args=[user.pk])).status_code == 403


def test_api_tokens_are_not_held_by_the_second_factor(enrolled):
    from liaison.accounts.services import create_api_token

    user, _ = enrolled
    _, raw = create_api_token(user, actor=user, name="ehr")
    assert Client(headers={"Authorization": f"Bearer {raw}"}).get("/api/v1/referrals").status_code == 200
