"""Sign-ins, sign-outs and failed attempts go to the audit trail."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from liaison.audit.services import record


@receiver(user_logged_in)
def _logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    record(user, "login", user, object_repr=user.email)


@receiver(user_logged_out)
def _logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:
        record(user, "logout", user, object_repr=user.email)


@receiver(user_login_failed)
def _login_failed(sender: Any, credentials: dict, request: Any = None, **kwargs: Any) -> None:
    attempted = str(credentials.get("username") or credentials.get("email") or "")[:254]
    record(None, "login_failed", object_type="accounts.user", object_repr=attempted)
