"""System checks: `liaison check --deploy` must be clean only when production is configured."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register()
def vendor_assets_present(app_configs: Any, **kwargs: Any) -> list:
    from liaison.core.assets import missing_assets

    missing = missing_assets()
    if not missing:
        return []
    names = ", ".join(a.package for a in missing)
    return [
        Error(
            f"front-end assets missing: {names}",
            hint="run `liaison assets` (make does it)",
            id="liaison.E001",
        )
    ]


@register(Tags.security, deploy=True)
def production_configuration(app_configs: Any, **kwargs: Any) -> list:
    problems = []
    if not settings.PHI_KEYS_FROM_ENV or not os.environ.get("PHI_INDEX_KEY"):
        problems.append(
            Warning(
                "PHI_KEYS or PHI_INDEX_KEY is not set: patient data is protected by keys generated in var/.",
                hint="Set both (keep copies outside the server; without PHI_KEYS the data is lost).",
                id="liaison.W001",
            )
        )
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        problems.append(
            Warning(
                "SQLite is the database: fine for a trial, use PostgreSQL for a team.",
                hint="Set DATABASE_URL=postgres://user:password@host/dbname",
                id="liaison.W002",
            )
        )
    if settings.EMAIL_BACKEND.endswith(("console.EmailBackend", "locmem.EmailBackend")):
        problems.append(
            Warning(
                "Email is printed to the console, not sent.",
                hint="Set EMAIL_URL, e.g. smtp+tls://user:password@smtp.example.org:587",
                id="liaison.W003",
            )
        )
    missing_mfa = sorted({"admin", "manager", "coordinator", "physician"} - set(settings.MFA_REQUIRED_ROLES))
    if missing_mfa:
        problems.append(
            Warning(
                f"Multi-factor sign-in is not required for roles that see patient data: {', '.join(missing_mfa)}.",
                hint="Set MFA_REQUIRED_ROLES=admin,manager,coordinator,physician (HIPAA 164.312(d)).",
                id="liaison.W005",
            )
        )
    if not settings.LIAISON_TLS:
        problems.append(
            Warning(
                "LIAISON_TLS is off: cookies are not marked secure and HTTP is not redirected.",
                hint="Serve Liaison behind a TLS-terminating proxy and set LIAISON_TLS=true.",
                id="liaison.W004",
            )
        )
    return problems
