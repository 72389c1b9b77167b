from __future__ import annotations

import hashlib
import json

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """One row per change (and per access to patient data), hash-chained to the row before.

    Never holds patient data: changed PHI fields are named, their values are not.
    Users are deactivated, never deleted, so `actor` is protected.
    """

    seq = models.BigIntegerField(unique=True, help_text="position in the hash chain, 1, 2, 3 ...")
    at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_label = models.CharField(max_length=254, help_text="the actor's email then, or the system job")
    action = models.CharField(max_length=40, db_index=True)
    object_type = models.CharField(max_length=60, db_index=True, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    phi = models.BooleanField(default=False, help_text="the event read or wrote patient data")
    request_id = models.CharField(max_length=64, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-seq"]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        return f"#{self.seq} {self.actor_label} {self.action} {self.object_type}:{self.object_id}"

    def compute_hash(self) -> str:
        payload = {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "actor": self.actor_id,
            "actor_label": self.actor_label,
            "action": self.action,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "object_repr": self.object_repr,
            "changes": self.changes,
            "phi": self.phi,
            "request_id": self.request_id,
            "prev_hash": self.prev_hash,
        }
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()


class AuditHead(models.Model):
    """The end of the chain (a single row): lets `audit verify` notice rows deleted at the end,
    and serialises writers (SELECT ... FOR UPDATE on PostgreSQL; SQLite's write lock)."""

    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="0" * 64)

    def __str__(self) -> str:
        return f"audit head at #{self.seq}"
