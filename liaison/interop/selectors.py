"""Reads of the intake pages."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from liaison.interop.models import ColumnMapping, ReferralImport


def imports_for(user: Any) -> QuerySet[ReferralImport]:
    """Managers and admins see every upload; coordinators their own."""
    qs = ReferralImport.objects.select_related("mapping", "job", "created_by")
    if user.has_role("admin", "manager"):
        return qs
    return qs.filter(created_by=user)


def proposed_mapping(headers: list[str]) -> ColumnMapping | None:
    """The saved mapping made for this very header, else the latest whose columns all exist."""
    mappings = list(ColumnMapping.objects.order_by("-updated_at"))
    for mapping in mappings:
        if mapping.headers == headers:
            return mapping
    present = set(headers)
    for mapping in mappings:
        if mapping.columns and set(mapping.columns.values()) <= present:
            return mapping
    return None
