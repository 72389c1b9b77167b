"""The one way domain services save a model: validate everything, write, audit, atomically."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from django.db import models, transaction

from liaison.audit.services import diff, record, snapshot

M = TypeVar("M", bound=models.Model)
_NOT_AUDITED = {"created_at", "updated_at"}


def audited_fields(model: type[models.Model]) -> list[str]:
    return [
        f.name
        for f in model._meta.concrete_fields
        if not f.primary_key and not f.generated and f.name not in _NOT_AUDITED
    ]


def save_with_audit(
    instance: M,
    data: dict[str, Any],
    *,
    actor: Any,
    m2m: dict[str, Iterable[models.Model]] | None = None,
    phi_fields: Iterable[str] = (),
    action: str | None = None,
) -> M:
    """Apply `data` (and many-to-many sets) to `instance`, validate it fully, save, audit.

    Raises django.core.exceptions.ValidationError (with field errors) before writing anything.
    Audits only what changed; an update that changes nothing writes nothing.
    """
    creating = instance._state.adding
    fields = audited_fields(type(instance))
    before = {} if creating else snapshot(instance, fields)
    m2m = {name: list(values) for name, values in (m2m or {}).items()}
    m2m_before = (
        {} if creating else {name: sorted(o.pk for o in getattr(instance, name).all()) for name in m2m}
    )
    for name, value in data.items():
        if name not in fields and not hasattr(type(instance), name):
            raise TypeError(f"{type(instance).__name__} has no field {name!r}")
        setattr(instance, name, value)
    with transaction.atomic():
        instance.full_clean()
        after = snapshot(instance, fields)
        m2m_after = {name: sorted(o.pk for o in values) for name, values in m2m.items()}
        changes = diff(before, after, phi_fields) | diff(m2m_before, m2m_after)
        if not creating and not changes:
            return instance
        instance.save()
        for name, values in m2m.items():
            getattr(instance, name).set(values)
        if creating:
            changes = {
                k: v
                for k, v in changes.items()
                if v not in ([None, ""], [None, None], [None, []], [None, False])
            }
        record(actor, action or ("create" if creating else "update"), instance, changes=changes)
    return instance
