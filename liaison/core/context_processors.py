from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def liaison(request: HttpRequest) -> dict:
    return {
        "organisation_name": settings.LIAISON_ORGANISATION_NAME or "Liaison",
        "idle_timeout_minutes": settings.IDLE_TIMEOUT_MINUTES,
    }
