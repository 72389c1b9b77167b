"""Writes to accounts: users and their API tokens. Each writes its audit row."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from liaison.accounts.models import ApiToken, Role, User, hash_token
from liaison.audit.services import record
from liaison.core.services import save_with_audit


def _check_physician_link(role: str, provider: Any) -> None:
    if role == Role.PHYSICIAN and provider is None:
        raise ValidationError({"provider": ["A physician user must be linked to one of our physicians."]})
    if provider is not None and not provider.is_ours:
        raise ValidationError({"provider": ["Only one of our own physicians can be linked to a user."]})


def create_user(
    *,
    actor: Any,
    email: str,
    full_name: str,
    role: str,
    password: str | None = None,
    provider: Any = None,
    validate: bool = True,
) -> User:
    """A new user. Without a password the account cannot sign in until one is set."""
    _check_physician_link(role, provider)
    user = User(email=email.lower(), full_name=full_name, role=role, provider=provider)
    if password:
        if validate:
            try:
                validate_password(password, user)
            except ValidationError as exc:
                raise ValidationError({"password": exc.messages}) from exc
        user.set_password(password)
    else:
        user.set_unusable_password()
    return save_with_audit(user, {}, actor=actor)


def update_user(user: User, *, actor: Any, **data: Any) -> User:
    role = data.get("role", user.role)
    provider = data.get("provider", user.provider)
    _check_physician_link(role, provider)
    demoting_self = (
        user.pk == getattr(actor, "pk", None)
        and user.role == Role.ADMIN
        and (data.get("is_active") is False or role != Role.ADMIN)
    )
    if demoting_self:
        raise ValidationError({"role": ["You cannot remove your own admin role or deactivate yourself."]})
    return save_with_audit(user, data, actor=actor)


def set_password(user: User, password: str, *, actor: Any) -> None:
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from exc
    with transaction.atomic():
        user.set_password(password)
        user.save(update_fields=["password"])
        record(actor, "set_password", user, object_repr=user.email)


@transaction.atomic
def create_api_token(
    user: User, *, actor: Any, name: str, expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """Returns the token row and the raw token, which is shown once and never stored."""
    if not name.strip():
        raise ValidationError({"name": ["Name the token (e.g. 'EHR integration')."]})
    raw = ApiToken.generate()
    token = ApiToken.objects.create(
        user=user, name=name.strip()[:100], prefix=raw[:12], digest=hash_token(raw), expires_at=expires_at
    )
    record(actor, "create", token, changes={"name": token.name, "user": user.pk})
    return token, raw


@transaction.atomic
def revoke_api_token(token: ApiToken, *, actor: Any) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        record(actor, "revoke", token)
    return token
