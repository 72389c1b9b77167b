"""Sign-in by email, throttling, idle logoff, roles on admin pages, API tokens stored hashed."""

import time

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.urls import reverse

from liaison.accounts import services
from liaison.accounts.middleware import SESSION_KEY
from liaison.accounts.models import ApiToken, Role, User, hash_token
from liaison.audit.models import AuditEvent
from tests.conftest import PASSWORD, ROLES


def test_users_sign_in_with_their_email_case_insensitively(make_user):
    make_user("liaison", email="lee@example.org")
    c = Client()
    response = c.post(reverse("accounts:login"), {"username": "Lee@Example.org", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == reverse("core:start")
    assert AuditEvent.objects.filter(action="login", actor__email="lee@example.org").exists()


def test_a_wrong_password_gets_a_clear_message_and_is_audited(make_user):
    make_user("liaison", email="lee@example.org")
    response = Client().post(reverse("accounts:login"), {"username": "lee@example.org", "password": "nope"})
    assert b"That email and password do not match an active account." in response.content
    assert AuditEvent.objects.filter(action="login_failed", object_repr="lee@example.org").exists()


def test_repeated_failures_lock_the_account_from_that_address(make_user):
    make_user("liaison", email="lee@example.org")
    c = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        c.post(reverse("accounts:login"), {"username": "lee@example.org", "password": "wrong"})
    # Even the right password is refused while locked.
    response = c.post(reverse("accounts:login"), {"username": "lee@example.org", "password": PASSWORD})
    assert response.status_code == 429
    assert b"Too many failed sign-ins" in response.content


def test_production_passwords_are_hashed_with_argon2(db):
    from liaison import settings as production

    with override_settings(PASSWORD_HASHERS=production.PASSWORD_HASHERS):
        user = User.objects.create_user("a@example.org", PASSWORD, full_name="A", role=Role.ADMIN)
    assert user.password.startswith("argon2$")


def test_an_idle_session_is_signed_out(client_for):
    c = client_for("coordinator")
    assert c.get(reverse("core:home")).status_code == 200
    session = c.session
    session[SESSION_KEY] = time.time() - settings.IDLE_TIMEOUT_MINUTES * 60 - 5
    session.save()
    response = c.get(reverse("directory:providers"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))
    assert c.get(reverse("core:home")).status_code == 302  # really signed out
    assert AuditEvent.objects.filter(action="logout_idle").exists()


def test_polling_does_not_keep_a_session_alive(client_for):
    c = client_for("coordinator")
    c.get(reverse("core:home"))
    stale = time.time() - 600
    session = c.session
    session[SESSION_KEY] = stale
    session.save()
    c.get(reverse("core:home"), headers={"X-Liaison-Poll": "1"})
    assert c.session[SESSION_KEY] == stale


@override_settings(IDLE_TIMEOUT_MINUTES=1)
def test_the_idle_timeout_is_configurable(client_for):
    c = client_for("manager")
    c.get(reverse("core:home"))
    session = c.session
    session[SESSION_KEY] = time.time() - 90
    session.save()
    assert c.get(reverse("core:home")).status_code == 302


def test_the_page_carries_the_idle_timeout_for_the_logoff_timer(client_for):
    html = client_for("liaison").get(reverse("core:home")).content.decode()
    assert f'data-idle-timeout="{settings.IDLE_TIMEOUT_MINUTES}"' in html


@pytest.mark.parametrize("role", [r for r in ROLES if r != "admin"])
def test_only_admins_reach_user_management_and_the_django_admin(client_for, role):
    c = client_for(role)
    assert c.get(reverse("accounts:users")).status_code == 403
    assert c.get(reverse("accounts:user_new")).status_code == 403
    assert (
        c.post(reverse("accounts:user_new"), {"email": "x@example.org", "role": "admin"}).status_code == 403
    )
    assert c.get("/admin/").status_code == 302  # the admin's own login page: not for this role
    assert c.get("/admin/accounts/user/").status_code == 302
    assert not User.objects.filter(email="x@example.org").exists()


def test_an_admin_creates_a_user_with_a_role(client_for):
    c = client_for("admin")
    assert c.get("/admin/").status_code == 200
    response = c.post(
        reverse("accounts:user_new"),
        {
            "email": "New.Liaison@Example.org",
            "full_name": "New Liaison",
            "role": "liaison",
            "password": "a long enough pass phrase",
        },
    )
    assert response.status_code == 302, response.content.decode()
    user = User.objects.get(email="new.liaison@example.org")
    assert user.role == "liaison" and user.check_password("a long enough pass phrase")
    event = AuditEvent.objects.get(action="create", object_type="accounts.user", object_id=str(user.pk))
    assert "password" not in event.changes or event.changes["password"] != "a long enough pass phrase"
    assert "a long enough pass phrase" not in str(event.changes)


def test_a_weak_password_is_refused_with_the_reason(client_for):
    c = client_for("admin")
    response = c.post(
        reverse("accounts:user_new"),
        {"email": "w@example.org", "full_name": "W", "role": "analyst", "password": "short"},
    )
    assert b"This password is too short" in response.content
    assert not User.objects.filter(email="w@example.org").exists()


def test_a_physician_user_must_be_one_of_our_physicians(client_for, referring_provider):
    c = client_for("admin")
    response = c.post(
        reverse("accounts:user_new"), {"email": "doc@example.org", "full_name": "Doc", "role": "physician"}
    )
    assert b"must be linked to one of our physicians" in response.content


def test_an_admin_cannot_demote_themselves(make_user):
    admin = make_user("admin")
    with pytest.raises(Exception, match="cannot remove your own admin role"):
        services.update_user(admin, actor=admin, role="liaison")


def test_api_tokens_are_shown_once_and_stored_hashed(client_for):
    c = client_for("liaison")
    response = c.post(reverse("accounts:tokens"), {"name": "my script"})
    raw = response.context["new_token"]
    assert raw.startswith("lia_") and len(raw) > 40
    token = ApiToken.objects.get(user=c.user)
    assert token.digest == hash_token(raw) and raw not in (token.digest, token.prefix)
    assert raw not in c.get(reverse("accounts:tokens")).content.decode()
    api = Client(headers={"Authorization": f"Bearer {raw}"})
    assert api.get("/api/v1/providers").status_code == 200
    c.post(reverse("accounts:token_revoke", args=[token.pk]))
    assert api.get("/api/v1/providers").status_code == 401


def test_a_user_cannot_revoke_someone_elses_token(make_user, client_for):
    other = make_user("manager", email="other@example.org")
    token, _ = services.create_api_token(other, actor=other, name="theirs")
    c = client_for("liaison")
    assert c.post(reverse("accounts:token_revoke", args=[token.pk])).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_expired_tokens_and_deactivated_users_are_refused(make_user):
    from datetime import timedelta

    from django.utils import timezone

    user = make_user("manager")
    _, expired = services.create_api_token(
        user, actor=user, name="old", expires_at=timezone.now() - timedelta(days=1)
    )
    _, live = services.create_api_token(user, actor=user, name="live")
    assert Client(headers={"Authorization": f"Bearer {expired}"}).get("/api/v1/providers").status_code == 401
    assert Client(headers={"Authorization": f"Bearer {live}"}).get("/api/v1/providers").status_code == 200
    user.is_active = False
    user.save()
    assert Client(headers={"Authorization": f"Bearer {live}"}).get("/api/v1/providers").status_code == 401


@pytest.mark.parametrize(
    ("role", "page"),
    [
        ("liaison", "outreach:today"),
        ("physician", "outreach:today"),
        ("coordinator", "referrals:queue"),
        ("manager", "analytics:dashboard"),
        ("analyst", "analytics:dashboard"),
        ("admin", "core:home"),
    ],
)
def test_each_role_starts_its_day_on_its_own_page_after_signing_in(client_for, role, page):
    c = client_for(role)
    response = c.get(reverse("core:start"))
    assert response.status_code == 302 and response["Location"] == reverse(page)
    assert c.get(response["Location"]).status_code == 200
