from __future__ import annotations

from datetime import timedelta
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from liaison.accounts import services
from liaison.accounts.forms import EmailLoginForm, MfaCodeForm, TokenForm, UserForm
from liaison.accounts.models import ApiToken, User
from liaison.core.forms import apply_errors
from liaison.core.pagination import paginate
from liaison.core.views import next_url


def role_required(*roles: str) -> Any:
    """The view is for these roles only: others get 403 (and anonymous users the login page)."""

    def decorate(view: Any) -> Any:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.has_role(*roles):
                raise PermissionDenied("Your role does not give access to this page.")
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


admin_required = role_required("admin")


class LoginView(auth_views.LoginView):
    form_class = EmailLoginForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True


@admin_required
def users(request: HttpRequest) -> HttpResponse:
    page = paginate(request, User.objects.select_related("provider").order_by("full_name", "email"), 50)
    return render(request, "accounts/users.html", {"page": page, "nav": "users"})


@admin_required
def user_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    user = get_object_or_404(User, pk=pk) if pk else None
    form = UserForm(request.POST or None, instance=user)
    if request.method == "POST" and form.is_valid():
        data = {k: form.cleaned_data[k] for k in ("email", "full_name", "role", "provider", "is_active")}
        password = form.cleaned_data["password"]
        try:
            if user is None:
                data.pop("is_active")
                user = services.create_user(actor=request.user, password=password or None, **data)
            else:
                services.update_user(user, actor=request.user, **data)
                if password:
                    services.set_password(user, password, actor=request.user)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, f"Saved {user.email}.")
            return redirect("accounts:users")
    return render(request, "accounts/user_form.html", {"form": form, "edited": user, "nav": "users"})


@login_required
def tokens(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST or None)
    new_token = None
    if request.method == "POST" and form.is_valid():
        days = form.cleaned_data["expires_in_days"]
        expires = timezone.now() + timedelta(days=days) if days else None
        try:
            _, new_token = services.create_api_token(
                request.user, actor=request.user, name=form.cleaned_data["name"], expires_at=expires
            )
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            form = TokenForm()
    return render(
        request,
        "accounts/tokens.html",
        {"form": form, "tokens": request.user.api_tokens.all(), "new_token": new_token},
    )


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    services.revoke_api_token(token, actor=request.user)
    messages.success(request, f"Token '{token.name}' revoked.")
    return redirect("accounts:tokens")


def _next(request: HttpRequest) -> str:
    return next_url(request, "/")


@login_required
def mfa(request: HttpRequest) -> HttpResponse:
    """Set up (or replace, or turn off) the authenticator app."""
    from liaison.accounts import mfa as mfa_service

    form = MfaCodeForm(request.POST or None)
    device = mfa_service.pending_device(request.user)
    if request.method == "POST" and request.POST.get("action") == "disable":
        try:
            mfa_service.disable(request.user, actor=request.user)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, "Authenticator app removed.")
            return redirect("accounts:mfa")
    elif request.method == "POST" and form.is_valid():
        try:
            mfa_service.confirm_device(request, device, form.cleaned_data["token"])
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(
                request, "Authenticator app set up: you will be asked for a code at each sign-in."
            )
            return redirect(_next(request))
    return render(
        request,
        "accounts/mfa.html",
        {
            "form": form,
            "secret": mfa_service.secret_base32(device),
            "qr": mfa_service.qr_svg(device),
            "enabled": mfa_service.has_mfa(request.user),
            "required": request.user.role in settings.MFA_REQUIRED_ROLES,
            "next": _next(request),
        },
    )


@login_required
def mfa_verify(request: HttpRequest) -> HttpResponse:
    from liaison.accounts import mfa as mfa_service

    form = MfaCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            mfa_service.verify(request, form.cleaned_data["token"])
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            return redirect(_next(request))
    return render(request, "accounts/mfa_verify.html", {"form": form, "next": _next(request)})


@admin_required
@require_POST
def mfa_reset(request: HttpRequest, pk: int) -> HttpResponse:
    """An admin removes a user's app (a lost phone); the user sets up a new one at next sign-in."""
    from liaison.accounts import mfa as mfa_service

    user = get_object_or_404(User, pk=pk)
    mfa_service.disable(user, actor=request.user)
    messages.success(request, f"Authenticator app of {user.email} removed.")
    return redirect("accounts:user_edit", pk)
