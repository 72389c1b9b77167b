"""The REST API: /api/v1/, OpenAPI at /api/v1/docs (and /api/v1/openapi.json).

Authentication: a personal API token (`Authorization: Bearer lia_...`, created on the "API tokens"
page) or the browser session (with the CSRF token on writes). One error format everywhere:
`{"detail": "...", "errors": {"field": ["message", ...]}}` with 400, 401, 403, 404 or 409.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.db import DataError, IntegrityError
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, AuthorizationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.parser import Parser
from ninja.security import APIKeyCookie, HttpBearer

from liaison.accounts.models import ApiToken, hash_token
from liaison.core.middleware import current_request_id

logger = logging.getLogger(__name__)


class TokenAuth(HttpBearer):
    openapi_description = "A personal API token from the 'API tokens' page: `Authorization: Bearer lia_...`"

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        if not token or len(token) > 200:
            return None
        found = ApiToken.objects.usable().select_related("user").filter(digest=hash_token(token)).first()
        if found is None:
            return None
        now = timezone.now()
        if found.last_used_at is None or now - found.last_used_at > timedelta(minutes=1):
            ApiToken.objects.filter(pk=found.pk).update(last_used_at=now)
        request.user = found.user
        return found.user


class SessionAuth(APIKeyCookie):
    """The browser session; CSRF is checked on unsafe methods."""

    param_name = "sessionid"

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        user = getattr(request, "user", None)
        return user if user is not None and user.is_authenticated else None


class StrictParser(Parser):
    """JSON bodies and query strings; a NUL character (which PostgreSQL cannot store) is refused."""

    def parse_body(self, request: HttpRequest) -> Any:
        if b"\\u0000" in request.body or b"\x00" in request.body:
            raise HttpError(400, "The request contains a NUL character.")
        return super().parse_body(request)

    def parse_querydict(self, data: Any, list_fields: list[str], request: HttpRequest) -> Any:
        for values in data.lists():
            if any("\x00" in v for v in values[1]) or "\x00" in values[0]:
                raise HttpError(400, "The query string contains a NUL character.")
        return super().parse_querydict(data, list_fields, request)


api = NinjaAPI(
    title="Liaison API",
    version="1",
    description=__doc__,
    urls_namespace="api",
    docs_url="/docs",
    auth=[TokenAuth(), SessionAuth()],
    parser=StrictParser(),
)


def error(
    request: HttpRequest, status: int, detail: str, errors: dict[str, list[str]] | None = None
) -> HttpResponse:
    body: dict[str, Any] = {"detail": detail}
    if errors:
        body["errors"] = errors
    return api.create_response(request, body, status=status)


def _field_name(loc: list[Any]) -> str:
    # pydantic locations look like ("body", "payload", "npi") or ("query", "radius_miles").
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "payload", "filters", "data")]
    return ".".join(parts) or "__all__"


@api.exception_handler(NinjaValidationError)
def on_schema_error(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    errors: dict[str, list[str]] = {}
    for e in exc.errors:
        errors.setdefault(_field_name(list(e.get("loc", []))), []).append(e.get("msg", "invalid"))
    return error(request, 400, "Invalid input.", errors)


@api.exception_handler(ValidationError)
def on_model_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
    return error(request, 400, "Invalid input.", errors)


@api.exception_handler(AuthenticationError)
def on_unauthenticated(request: HttpRequest, exc: Exception) -> HttpResponse:
    return error(request, 401, "Authentication required: a valid API token or a signed-in session.")


@api.exception_handler(AuthorizationError)
@api.exception_handler(PermissionDenied)
def on_forbidden(request: HttpRequest, exc: Exception) -> HttpResponse:
    detail = str(exc) if str(exc) and str(exc) != "Forbidden" else "Your role does not allow this."
    return error(request, 403, detail)


@api.exception_handler(Http404)
@api.exception_handler(ObjectDoesNotExist)
def on_not_found(request: HttpRequest, exc: Exception) -> HttpResponse:
    return error(request, 404, "Not found.")


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return error(request, exc.status_code, str(exc))


@api.exception_handler(DataError)
def on_data_error(request: HttpRequest, exc: DataError) -> HttpResponse:
    return error(request, 400, "A value is out of range or malformed.")


@api.exception_handler(IntegrityError)
def on_conflict(request: HttpRequest, exc: IntegrityError) -> HttpResponse:
    return error(request, 409, "This conflicts with existing data (it may have been changed meanwhile).")


@api.exception_handler(Exception)
def on_crash(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.exception("API error")
    return error(
        request, 500, f"Internal error; quote request id {current_request_id()} to your administrator."
    )


def require(allowed: bool, detail: str = "Your role does not allow this.") -> None:
    """Raise 403 unless `allowed`: `require(request.user.can_edit_directory)`."""
    if not allowed:
        raise PermissionDenied(detail)


def _register_routers() -> None:
    from liaison.analytics.api import router as analytics_router
    from liaison.campaigns.api import router as campaigns_router
    from liaison.directory.api import router as directory_router
    from liaison.feedback.api import router as feedback_router
    from liaison.marketdata.api import router as marketdata_router
    from liaison.outreach.api import router as outreach_router
    from liaison.referrals.api import router as referrals_router

    api.add_router("/", directory_router)
    api.add_router("/", referrals_router)
    api.add_router("/", outreach_router)
    api.add_router("/", feedback_router)
    api.add_router("/market/", marketdata_router)
    api.add_router("/", campaigns_router)
    api.add_router("/", analytics_router)


_register_routers()
