"""The bulk path of file imports: tens of thousands of referrals in one transaction.

`receive_referral` per row costs several queries, an audit row and a notification each: about
a millisecond and a half a row, too slow for 100k rows. This path applies the same per-row
checks (`RowBuilder` calls `referrals.services.validate_new_referral`), resolves referrers and
rows already imported per chunk of 900 rows, inserts referrals and their history rows with
plain INSERTs / COPY (`core/rows.py`), and writes one audit row for the whole import. All or
nothing: any bad row (unless the user chose to skip them) rolls everything back. Large files
are built by worker processes when the CPUs are idle (`interop/parallel.py`).

File imports record past and present referrals: they do not notify referring offices.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from liaison.audit.services import record
from liaison.core.jobs import Progress
from liaison.core.rows import Inserter, frozen_heap, in_list
from liaison.interop.tabular import BuiltRow, MappingSpec, RowBuilder, read_table
from liaison.referrals.models import Channel, DeclineReason, EventKind, Referral, ReferralEvent, Status
from liaison.referrals.services import _actor_label

CHUNK_ROWS = 900  # also bounds the IN (...) lists below SQLite's 999 parameters
MAX_ERRORS_KEPT = 500


@dataclass
class ImportResult:
    rows: int = 0
    new: int = 0
    created: int = 0
    existing: int = 0
    duplicates: int = 0
    error_rows: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    first_id: int | None = None
    last_id: int | None = None

    def add(self, built: list[BuiltRow]) -> None:
        for b in built:
            self.rows += 1
            if b.outcome == "new":
                self.new += 1
            elif b.outcome == "existing":
                self.existing += 1
            elif b.outcome == "duplicate":
                self.duplicates += 1
            else:
                self.error_rows += 1
                for message in b.errors:
                    if len(self.errors) < MAX_ERRORS_KEPT:
                        self.errors.append((b.number, message))

    def summary(self) -> dict[str, Any]:
        """For the JobRun and the import page: counts and row errors, no patient data."""
        return {
            "rows": self.rows,
            "imported": self.created,
            "already imported": self.existing,
            "repeated in the file": self.duplicates,
            "rows with errors": self.error_rows,
        }


# The columns the import looks rows up by; the whole table (wide ciphertext columns) took 0.6 s
# to sample, and autovacuum analyses it soon after a large import anyway.
ANALYZED = ("source_system", "external_id")


def _analyze() -> None:
    """Fresh planner statistics on PostgreSQL once the referral table has grown a lot: with the
    old ones it looks rows up through the wrong index (a re-import of 100k rows: 13 s, 2 s after)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            qn = connection.ops.quote_name
            columns = ", ".join(qn(c) for c in ANALYZED)
            cursor.execute(f"ANALYZE {qn(Referral._meta.db_table)} ({columns})")


def batched(rows: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while chunk := list(islice(rows, size)):
        yield chunk


def import_table(
    content: bytes,
    kind: str,
    spec: MappingSpec,
    *,
    actor: Any,
    skip_bad_rows: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    label: str = "file import",
    total: int | None = None,
    workers: int | None = None,
) -> ImportResult:
    """Check every row and write the good ones, all or nothing (see the module docstring).

    `workers`: processes that build the rows (default: a few for files of 20,000 rows or more,
    see liaison.interop.parallel); 0 builds them in this process.
    """
    from liaison.interop import parallel

    progress = progress or Progress()
    headers, rows = read_table(content, kind)
    builder = RowBuilder(spec, headers)
    result = ImportResult()
    workers = parallel.worker_count(total) if workers is None else workers
    progress.start(total, "checking and importing rows")
    with frozen_heap(), transaction.atomic():
        chunks = batched(rows, CHUNK_ROWS)
        if workers > 0:
            built_chunks = parallel.build_in_workers(builder, chunks, workers)
        else:
            built_chunks = (builder.build_chunk(chunk) for chunk in chunks)
        analyzed_at = 0
        for built in built_chunks:
            result.add(built)
            if not dry_run and (skip_bad_rows or not result.error_rows):
                _write(
                    [b for b in built if b.outcome == "new"],
                    actor=actor,
                    label=label,
                    result=result,
                )
                if result.created >= max(10_000, 4 * analyzed_at):
                    _analyze()
                    analyzed_at = result.created
            progress.advance(len(built))
        if dry_run or (result.error_rows and not skip_bad_rows):
            transaction.set_rollback(True)
            result.created, result.first_id, result.last_id = 0, None, None
        elif result.created:
            if result.created >= 1_000:
                _analyze()
            record(
                actor,
                "import",
                object_type="referrals.referral",
                object_repr=f"{label}: {result.created} referrals",
                phi=True,
                changes={
                    "imported": result.created,
                    "already_imported": result.existing,
                    "repeated": result.duplicates,
                    "skipped_error_rows": result.error_rows,
                    "first_id": result.first_id,
                    "last_id": result.last_id,
                    "source_system": spec.source_system,
                },
            )
            _tell_outreach(result.first_id, result.last_id, actor)
    return result


def _tell_outreach(first_id: int | None, last_id: int | None, actor: Any) -> None:
    """Each practice with imported referrals: its account opens (or reopens) from its earliest one,
    as if they had come one by one through receive_referral."""
    from django.db.models import Min

    from liaison.directory.models import Practice
    from liaison.outreach.services import record_first_referral

    if first_id is None:
        return
    earliest = (
        Referral.objects.filter(pk__gte=first_id, pk__lte=last_id, referring_location__isnull=False)
        .values("referring_location__practice")
        .annotate(first=Min("received_at"))
    )
    practices = Practice.objects.in_bulk([row["referring_location__practice"] for row in earliest])
    for row in earliest:
        practice = practices[row["referring_location__practice"]]
        if not practice.is_ours:
            record_first_referral(practice, when=row["first"], actor=actor)


def _write(rows: list[BuiltRow], *, actor: Any, label: str, result: ImportResult) -> None:
    """Insert the rows' referrals, their "received" history rows (one INSERT … SELECT) and the
    history rows of an imported status."""
    if not rows:
        return
    inserter = Inserter(Referral)
    prepared = rows[0].values is not None  # built by worker processes: values ready to insert
    values = [b.values for b in rows] if prepared else [inserter.values(b.referral) for b in rows]
    ids = inserter.insert(values, prepared=prepared)
    user_id = getattr(actor, "pk", None)
    actor_label = _actor_label(actor)
    _received_events(ids, user_id, actor_label, {"channel": Channel.IMPORT, "import": label})
    now = timezone.now()
    event_rows = Inserter(ReferralEvent)
    events = []
    for b, pk in zip(rows, ids, strict=True):
        if not b.imported_status:
            continue
        data: dict[str, Any] = {"imported": True}
        if b.appointment_at:
            data["appointment_at"] = b.appointment_at.isoformat()
        if b.imported_status == Status.DECLINED:
            data["decline_reason"] = DeclineReason.OTHER
        events.append(
            event_rows.row(
                {
                    "referral_id": pk,
                    "kind": EventKind.STATUS,
                    "at": now,
                    "actor_id": user_id,
                    "actor_label": actor_label,
                    "from_status": Status.RECEIVED,
                    "to_status": b.imported_status,
                    "data": data,
                }
            )
        )
    event_rows.insert(events)
    result.created += len(ids)
    result.first_id = min(ids[0], result.first_id or ids[0])
    result.last_id = max(ids[-1], result.last_id or 0)


def _received_events(ids: list[int], user_id: int | None, actor_label: str, data: dict[str, Any]) -> None:
    """The "received" history row of each new referral, at its received time, made by the
    database from the referral rows (the same row receive_referral writes, with no Python per row)."""
    qn = connection.ops.quote_name
    event, referral = ReferralEvent._meta, Referral._meta
    columns = [
        "referral_id",
        "at",
        "actor_id",
        "actor_label",
        "kind",
        "from_status",
        "to_status",
        "note",
        "data",
    ]
    assert {f.column for f in event.concrete_fields} - {"id"} == set(columns), "ReferralEvent changed"
    json_data = event.get_field("data").get_db_prep_save(data, connection)
    condition, params = in_list(qn("id"), ids)
    sql = (
        f"INSERT INTO {qn(event.db_table)} ({', '.join(qn(c) for c in columns)}) "  # noqa: S608 (names)
        f"SELECT {qn('id')}, {qn('received_at')}, %s, %s, %s, '', %s, '', %s "
        f"FROM {qn(referral.db_table)} WHERE {condition}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [user_id, actor_label, EventKind.STATUS, Status.RECEIVED, json_data, *params])
