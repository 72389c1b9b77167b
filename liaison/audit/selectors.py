from __future__ import annotations

from datetime import date

from django.db.models import QuerySet

from liaison.audit.models import AuditEvent


def search_events(
    *,
    actor: str = "",
    action: str = "",
    object_type: str = "",
    object_id: str = "",
    since: date | None = None,
    until: date | None = None,
    phi_only: bool = False,
) -> QuerySet[AuditEvent]:
    qs = AuditEvent.objects.all()
    if actor:
        qs = qs.filter(actor_label__icontains=actor)
    if action:
        qs = qs.filter(action=action)
    if object_type:
        qs = qs.filter(object_type=object_type)
    if object_id:
        qs = qs.filter(object_id=object_id)
    if since:
        qs = qs.filter(at__date__gte=since)
    if until:
        qs = qs.filter(at__date__lte=until)
    if phi_only:
        qs = qs.filter(phi=True)
    return qs.order_by("-seq")


def known_actions() -> list[str]:
    return list(AuditEvent.objects.order_by("action").values_list("action", flat=True).distinct())


def known_object_types() -> list[str]:
    return list(
        AuditEvent.objects.exclude(object_type="")
        .order_by("object_type")
        .values_list("object_type", flat=True)
        .distinct()
    )
