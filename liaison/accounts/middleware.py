"""Automatic logoff after idle time (HIPAA 164.312(a)(2)(iii))."""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from liaison.audit.services import record

SESSION_KEY = "liaison_last_activity"


class IdleLogoutMiddleware:
    """Ends a session idle for IDLE_TIMEOUT_MINUTES. Polling requests (header X-Liaison-Poll)
    do not count as activity, so a progress bar left open does not keep a session alive."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and hasattr(request, "session"):
            now = time.time()
            last = request.session.get(SESSION_KEY)
            if last is not None and now - last > settings.IDLE_TIMEOUT_MINUTES * 60:
                record(user, "logout_idle", user, object_repr=user.email)
                logout(request)
                return self._to_login(request)
            # Refreshing at most every 30 s spares a session write on every request.
            if not request.headers.get("X-Liaison-Poll") and (last is None or now - last > 30):
                request.session[SESSION_KEY] = now
        return self.get_response(request)

    def _to_login(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/"):
            return HttpResponse(
                '{"detail": "Signed out after inactivity."}', status=401, content_type="application/json"
            )
        url = reverse("accounts:login") + "?" + urlencode({"idle": 1, "next": request.get_full_path()})
        if request.headers.get("HX-Request"):
            response = HttpResponse(status=204)
            response["HX-Redirect"] = url
            return response
        return HttpResponseRedirect(url)
