"""Writing and checking the audit trail. Every service that changes data calls `record`."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db import models, transaction
from django.db.models.fields.files import FieldFile
from django.utils import timezone

from liaison.audit.models import AuditEvent, AuditHead
from liaison.core.middleware import current_request_id

GENESIS = "0" * 64


def _plain(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime, dt.time, decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, FieldFile):
        return value.name or ""
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    return value


def snapshot(instance: models.Model, fields: Iterable[str]) -> dict[str, Any]:
    """The values of `fields` (FKs by id), in a form JSON and the hash chain accept."""
    out = {}
    for name in fields:
        field = instance._meta.get_field(name)
        attr = field.attname if getattr(field, "many_to_one", False) else name
        out[name] = _plain(getattr(instance, attr))
    return out


def diff(before: dict[str, Any], after: dict[str, Any], phi_fields: Iterable[str] = ()) -> dict[str, Any]:
    """What changed, as {field: [old, new]}; a PHI field is named but its values are not kept."""
    phi = set(phi_fields)
    changes: dict[str, Any] = {}
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old != new:
            changes[name] = "(patient data changed)" if name in phi else [old, new]
    return changes


def _label(obj: models.Model) -> str:
    return f"{obj._meta.app_label}.{obj._meta.model_name}"


def record(
    actor: Any,
    action: str,
    obj: models.Model | None = None,
    *,
    object_type: str = "",
    object_id: str = "",
    object_repr: str | None = None,
    changes: dict[str, Any] | None = None,
    phi: bool = False,
) -> AuditEvent:
    """Append one event to the chain, in the caller's transaction.

    `object_repr` defaults to str(obj): models holding patient data define a __str__ without it.
    `actor` is a User, or None for the system (then object_repr says which job).
    """
    with transaction.atomic():
        head, _ = AuditHead.objects.select_for_update().get_or_create(pk=1)
        user = actor if getattr(actor, "pk", None) else None
        event = AuditEvent(
            seq=head.seq + 1,
            at=timezone.now(),
            actor=user,
            actor_label=(user.email if user else str(actor or "system"))[:254],
            action=action[:40],
            object_type=(_label(obj) if obj is not None else object_type)[:60],
            object_id=str(obj.pk if obj is not None else object_id)[:64],
            object_repr=(str(obj) if object_repr is None and obj is not None else object_repr or "")[:200],
            changes={k: _plain(v) for k, v in (changes or {}).items()},
            phi=phi,
            request_id=current_request_id()[:64],
            prev_hash=head.hash,
        )
        event.hash = event.compute_hash()
        event.save()
        head.seq, head.hash = event.seq, event.hash
        head.save(update_fields=["seq", "hash"])
    return event


@dataclass(frozen=True)
class ChainProblem:
    seq: int | None
    event_id: int | None
    reason: str

    def __str__(self) -> str:
        where = f"row #{self.seq} (id {self.event_id})" if self.seq is not None else "end of chain"
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class VerifyResult:
    checked: int
    problem: ChainProblem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _rows() -> Iterator[AuditEvent]:
    return AuditEvent.objects.order_by("seq").iterator(chunk_size=5000)


def verify_chain(progress: Any = None) -> VerifyResult:
    """Walk the chain in order; report the first altered, inserted or deleted row."""
    prev_seq, prev_hash, checked = 0, GENESIS, 0
    if progress is not None:
        progress.start(AuditEvent.objects.count(), "verifying audit chain")
    for event in _rows():
        if event.seq != prev_seq + 1:
            return VerifyResult(
                checked,
                ChainProblem(
                    event.seq, event.pk, f"rows #{prev_seq + 1} to #{event.seq - 1} are missing (deleted)"
                ),
            )
        if event.prev_hash != prev_hash:
            return VerifyResult(
                checked,
                ChainProblem(
                    event.seq,
                    event.pk,
                    "does not link to the row before it (that row was altered or replaced)",
                ),
            )
        if event.compute_hash() != event.hash:
            return VerifyResult(
                checked, ChainProblem(event.seq, event.pk, "its content no longer matches its hash (altered)")
            )
        prev_seq, prev_hash = event.seq, event.hash
        checked += 1
        if progress is not None:
            progress.advance()
    head = AuditHead.objects.filter(pk=1).first()
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
    if (head_seq, head_hash) != (prev_seq, prev_hash):
        reason = (
            f"the chain ends at #{prev_seq} but #{head_seq} was written: the last rows were deleted"
            if head_seq > prev_seq
            else "the recorded end of the chain does not match its last row (altered)"
        )
        return VerifyResult(checked, ChainProblem(None, None, reason))
    if progress is not None:
        progress.finish()
    return VerifyResult(checked, None)
