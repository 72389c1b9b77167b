"""`liaison phi new-key` and `liaison phi rotate`: rotate the keys that encrypt patient data.

Procedure: `liaison phi new-key` prints a key; put it FIRST in PHI_KEYS (keep the old one after
it), restart, run `liaison phi rotate` (re-encrypts every value and stored document with the new
key), then remove the old key from PHI_KEYS.
"""

from __future__ import annotations

import sys
from typing import Any

from cryptography.fernet import Fernet
from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, models, transaction

from liaison.audit.services import record
from liaison.core.jobs import ConsoleProgress, Progress
from liaison.core.phi import EncryptedTextField, PhiKeyError, rotate_token

BATCH = 500


def _encrypted_columns() -> list[tuple[type[models.Model], list[str]]]:
    out = []
    for model in apps.get_models():
        cols = [f.column for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
        if cols:
            out.append((model, cols))
    return out


def _encrypted_files() -> list[tuple[type[models.Model], str]]:
    from liaison.referrals.models import Notification, ReferralDocument

    return [(ReferralDocument, "file"), (Notification, "document")]


def rotate_all(progress: Progress) -> dict[str, int]:
    """Re-encrypt every encrypted column and file with the first key of PHI_KEYS."""
    counts = {"values": 0, "files": 0}
    tables = _encrypted_columns()
    total = sum(m.objects.count() for m, _ in tables) + sum(
        m.objects.exclude(**{f: ""}).count() for m, f in _encrypted_files()
    )
    progress.start(total, "re-encrypting patient data")
    qn = connection.ops.quote_name
    for model, cols in tables:
        table, pk = qn(model._meta.db_table), qn(model._meta.pk.column)
        last = None
        while True:
            with connection.cursor() as cursor:
                where = f"WHERE {pk} > %s " if last is not None else ""
                cursor.execute(
                    f"SELECT {pk}, {', '.join(qn(c) for c in cols)} FROM {table} {where}ORDER BY {pk} LIMIT {BATCH}",  # noqa: S608 (names from the model registry)
                    [last] if last is not None else [],
                )
                rows = cursor.fetchall()
            if not rows:
                break
            with transaction.atomic(), connection.cursor() as cursor:
                for row in rows:
                    values = [rotate_token(v) if v else v for v in row[1:]]
                    counts["values"] += sum(1 for v in row[1:] if v)
                    cursor.execute(
                        f"UPDATE {table} SET {', '.join(f'{qn(c)} = %s' for c in cols)} WHERE {pk} = %s",  # noqa: S608
                        [*values, row[0]],
                    )
            last = rows[-1][0]
            progress.advance(len(rows))
    for model, field in _encrypted_files():
        for obj in model.objects.exclude(**{field: ""}).iterator():
            stored = getattr(obj, field)
            with stored.open("rb") as f:
                token = f.read()
            rotated = rotate_token(token)
            with stored.storage.open(stored.name, "wb") as f:
                f.write(rotated)
            counts["files"] += 1
            progress.advance()
    progress.finish()
    return counts


class Command(BaseCommand):
    help = "Patient-data keys: `new-key` prints a fresh key; `rotate` re-encrypts everything with the first PHI_KEYS key."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="{new-key,rotate}")
        sub.add_parser("new-key", help="print a new key to put first in PHI_KEYS")
        sub.add_parser("rotate", help="re-encrypt every value and document with the first key of PHI_KEYS")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "new-key":
            self.stdout.write(Fernet.generate_key().decode())
            return
        progress = ConsoleProgress("re-encrypting") if sys.stderr.isatty() else Progress()
        try:
            counts = rotate_all(progress)
        except PhiKeyError as exc:
            raise CommandError(f"{exc}: is the old key still in PHI_KEYS (after the new one)?") from exc
        record("liaison phi rotate", "rotate_keys", object_type="core.phi", changes=counts)
        self.stdout.write(
            f"re-encrypted {counts['values']} values and {counts['files']} documents with the first key"
        )
