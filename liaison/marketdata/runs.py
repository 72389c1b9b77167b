"""The life of one import: start or resume a run, commit batches, report what happened.

Every import (NPPES, deactivation report, shared patients, utilisation) goes through `FileImport`:

- Kept rows are written in batches; each batch, its counters and the checkpoint (how many kept
  rows are done) are committed in one transaction, so a killed import never leaves half a batch.
- Running the same import again (same file, same filters) resumes an interrupted run: the scan
  returns the kept rows in file order, so the rows up to the checkpoint are skipped, and the
  result is the database one clean run gives. A finished run is not repeated (`force` reads the
  file again, which changes nothing when the data has not changed).
- The fast reader (Polars) is tried first when the importer has a plan for it; at the first row
  it cannot read, the import carries on from its last committed batch with the careful reader
  (DuckDB), as a resumed run would.
- Rows that cannot be used are counted and the first 100 listed with their line number and reason;
  the import goes on with the good rows. One audit event summarises the import.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone

from liaison.audit.services import record
from liaison.core.jobs import Progress
from liaison.core.rows import frozen_heap
from liaison.marketdata.models import ImportRun
from liaison.marketdata.scan import (
    TICK_EVERY,
    CsvScan,
    ImportFileError,
    PolarsPlan,
    PolarsScan,
    ScanFallback,
    SourceFile,
    average_line_bytes,
    file_key,
    open_source,
    read_ahead,
)

logger = logging.getLogger(__name__)
LISTED = 100  # rejected rows and warnings listed by line (all are counted)


class _ResumeMismatch(Exception):
    """The kept rows are not the ones the interrupted run saw: read the file from the start."""


def batch_committed(run: ImportRun, batch_no: int) -> None:
    """Called after each committed batch. Tests replace it to kill an import half way."""


class FileImport:
    """One import of one file. Subclasses say how to detect, filter and write their kind."""

    kind: str = ""
    member_suffixes: tuple[str, ...] = (".csv",)
    default_batch_size = 2000  # kept rows per transaction
    locate_fields = 1  # leading fields that identify a row when naming a rejected row's line

    def __init__(
        self,
        path: Path | str,
        *,
        actor: Any,
        progress: Progress | None = None,
        force: bool = False,
        batch_size: int | None = None,
        job_run: Any = None,
    ) -> None:
        self.path = Path(path)
        self.actor = actor
        self.progress = progress or Progress()
        self.force = force
        self.batch_size = batch_size or self.default_batch_size
        self.job_run = job_run
        self.already_done = False
        self.resumed = False
        self.run: ImportRun | None = None
        self.src: SourceFile | None = None
        self.file_format = ""
        self.columns: list[str] = []
        self.has_header = True
        self.types: dict[str, str] = {}

    # --- what each kind provides ------------------------------------------------------------

    def choose_member(self, infos: list) -> Any:
        candidates = [i for i in infos if i.filename.lower().endswith(self.member_suffixes)]
        return max(candidates, key=lambda i: i.file_size, default=None)

    def detect(self, src: SourceFile) -> None:
        """Check the file is of this kind (ImportFileError otherwise); set columns and format."""
        raise NotImplementedError

    def filters(self) -> dict[str, Any]:
        return {}

    def prepare(self, scan: CsvScan) -> tuple[str, str, str]:
        """Register filter tables; return (select list, keep condition, column to tick on)."""
        raise NotImplementedError

    def polars_plan(self) -> PolarsPlan | None:
        """The rows and values `prepare` selects, for the fast reader; None: the careful one only."""
        return None

    def row_key(self, row: tuple) -> str:
        return str(row[0])

    def begin(self) -> None:
        """Before the first batch (load lookups)."""

    def write_batch(self, rows: list[tuple]) -> None:
        raise NotImplementedError

    def complete(self) -> None:
        """Inside the final transaction, after the last batch."""

    def after(self) -> None:
        """After the import committed (e.g. recompute the opportunity scores)."""

    def cleanup(self) -> None:
        """Whatever happened (remove temporary files)."""

    # --- helpers for subclasses -------------------------------------------------------------

    def reject(self, key: str, reason: str, line: int | None = None) -> None:
        run = self.run
        run.rejected += 1
        if len(run.rejected_rows) < LISTED:
            run.rejected_rows.append({"row": line, "key": key, "reason": reason})

    def warn(self, key: str, reason: str, line: int | None = None) -> None:
        run = self.run
        run.warning_count += 1
        if len(run.warnings) < LISTED:
            run.warnings.append({"row": line, "key": key, "reason": reason})

    # --- the run ----------------------------------------------------------------------------

    def execute(self) -> ImportRun:
        with frozen_heap():
            return self._execute()

    def _execute(self) -> ImportRun:
        try:
            with open_source(self.path, self.choose_member) as src:
                self.src = src
                self.detect(src)
                key = file_key(src.path, self.kind, self.filters())
                self._start(key)
                if self.already_done:
                    return self.run
                try:
                    self._scan_with_retry()
                except BaseException as exc:
                    self._mark_failed(exc)
                    raise
        finally:
            self.cleanup()
        self.after()
        return self.run

    def _start(self, key: str) -> None:
        previous = (
            ImportRun.objects.filter(kind=self.kind, file_key=key).order_by("-started_at", "-pk").first()
        )
        label = self.src.label
        if previous is not None and previous.status == ImportRun.Status.SUCCEEDED and not self.force:
            self.run, self.already_done = previous, True
            return
        if previous is not None and previous.status != ImportRun.Status.SUCCEEDED:
            if previous.status == ImportRun.Status.RUNNING and not previous.is_interrupted:
                raise ImportFileError(
                    f"{label}: this import is already running (import #{previous.pk}, started "
                    f"{timezone.localtime(previous.started_at):%Y-%m-%d %H:%M}); wait for it to finish"
                )
            previous.status = ImportRun.Status.RUNNING
            previous.attempts += 1
            previous.heartbeat_at = timezone.now()
            previous.message = ""
            if self.job_run is not None:
                previous.job_run = self.job_run
            previous.save(update_fields=["status", "attempts", "heartbeat_at", "message", "job_run"])
            self.run, self.resumed = previous, True
            return
        user = self.actor if getattr(self.actor, "pk", None) else None
        self.run = ImportRun.objects.create(
            kind=self.kind,
            file_name=label[:255],
            file_size=self.src.size,
            file_key=key,
            file_format=self.file_format[:120],
            filters=self.filters(),
            started_by=user,
            actor_label=(user.email if user else str(self.actor or "system"))[:254],
            job_run=self.job_run,
        )

    def _mark_failed(self, exc: BaseException) -> None:
        if self.run is None:
            return
        if isinstance(exc, KeyboardInterrupt):
            message = "Interrupted"
        elif isinstance(exc, ImportFileError):
            message = str(exc)
        else:
            message = f"Stopped by an error ({type(exc).__name__})"
        done = ImportRun.objects.filter(pk=self.run.pk).values_list("checkpoint", flat=True).first() or 0
        message = f"{message} after {done:,} kept rows; run the same import again to resume."
        # update(), not save(): the in-memory counters may include the batch that was rolled back.
        ImportRun.objects.filter(pk=self.run.pk).update(
            status=ImportRun.Status.FAILED, message=message[:500], heartbeat_at=timezone.now()
        )
        self.run.message = message

    def _scan_with_retry(self) -> None:
        self._shown = 0
        avg = average_line_bytes(self.src.path)
        self._estimate = int(self.src.size / avg) if avg else None  # rows in the file, roughly
        self.progress.start(self._estimate, f"Reading {self.src.label}")
        skip = self.run.checkpoint if self.resumed else 0
        fast = settings.MARKETDATA_FAST_SCAN and not self.src.path.name.lower().endswith(".gz")
        try:
            try:
                self._scan(skip, fast=fast)
            except ScanFallback as exc:
                # Public data only here: the reason may quote the row.
                logger.info("%s: read on with DuckDB (%s)", self.src.label, exc)
                self._scan(skip=self.run.checkpoint, fast=False)
        except _ResumeMismatch:
            self.warn(
                "",
                "the rows of the interrupted run could not be matched: the file was read again from the start",
            )
            self._scan(skip=0, fast=False)

    def _scan(self, skip: int, fast: bool) -> None:
        run, src = self.run, self.src
        plan = self.polars_plan() if fast else None
        if plan is not None:
            scan: CsvScan | PolarsScan = PolarsScan(
                src.path, self.columns, header=self.has_header, label=src.label
            )
        else:
            scan = CsvScan(src.path, self.columns, header=self.has_header, types=self.types, label=src.label)
        batches = None
        try:
            batches = read_ahead(
                scan.stream(plan) if plan is not None else scan.stream(*self.prepare(scan), self.batch_size)
            )
            self.begin()
            estimate = self._estimate
            ticks, index, batch_no = 0, 0, 0
            last_beat = time.monotonic()
            pending: list[tuple] = []
            for rows in batches:
                for row in rows:
                    if row[1]:
                        ticks += 1
                    if not row[0]:
                        continue
                    index += 1
                    data = row[2:]
                    if index <= skip:
                        if index == skip and self.row_key(data) != run.checkpoint_key:
                            raise _ResumeMismatch
                        continue
                    pending.append(data)
                    if len(pending) >= self.batch_size:
                        batch_no += 1
                        self._commit(pending, index, batch_no)
                        pending = []
                        last_beat = time.monotonic()
                target = ticks * TICK_EVERY
                if estimate:
                    target = min(target, estimate - 1)
                if target > self._shown:
                    self.progress.advance(target - self._shown, f"{src.label}: {index:,} rows kept")
                    self._shown = target
                if time.monotonic() - last_beat > 30:
                    ImportRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now())
                    last_beat = time.monotonic()
            if skip and index < skip:
                raise _ResumeMismatch
            if pending:
                batch_no += 1
                self._commit(pending, index, batch_no)
            self._finish(scan, self._shown)
        finally:
            if batches is not None:
                batches.close()  # now, not when the traceback lets go of it: it stops the reading thread
            scan.close()

    def _commit(self, rows: list[tuple], index: int, batch_no: int) -> None:
        run = self.run
        with transaction.atomic():
            self.write_batch(rows)
            run.rows_kept += len(rows)
            run.checkpoint = index
            run.checkpoint_key = self.row_key(rows[-1])[:40]
            run.heartbeat_at = timezone.now()
            run.save()
        batch_committed(run, batch_no)

    def _finish(self, scan: CsvScan | PolarsScan, shown: int) -> None:
        run = self.run
        scanned = scan.rows_scanned()  # first: the profiler describes the last query run
        parse_rejects = scan.rejects()
        run.rows_read = scanned + len(parse_rejects) if scanned is not None else None
        unnamed = [
            r["key"] for r in [*run.rejected_rows, *run.warnings] if r.get("row") is None and r.get("key")
        ]
        if unnamed:
            lines = scan.locate(unnamed, self.locate_fields)
            for item in [*run.rejected_rows, *run.warnings]:
                if item.get("row") is None and item.get("key") in lines:
                    item["row"] = lines[item["key"]]
        with transaction.atomic():
            for reject in parse_rejects:
                self.reject("", reject.reason, line=reject.line)
            run.rejected_rows.sort(key=lambda r: (r.get("row") is None, r.get("row") or 0))
            run.rejected_rows = run.rejected_rows[:LISTED]
            self.complete()
            run.status = ImportRun.Status.SUCCEEDED
            run.finished_at = run.heartbeat_at = timezone.now()
            run.message = run.summary()[:500]
            run.save()
            if run.inserted or run.updated:
                record(
                    self.actor,
                    "import",
                    object_type=f"marketdata.{self.kind}",
                    object_id=str(run.pk),
                    object_repr=run.file_name[:200],
                    changes={
                        "rows_read": run.rows_read,
                        "kept": run.rows_kept,
                        "inserted": run.inserted,
                        "updated": run.updated,
                        "unchanged": run.unchanged,
                        "rejected": run.rejected,
                    },
                )
        if run.rows_read and run.rows_read > shown:
            self.progress.advance(run.rows_read - shown)
        self.progress.finish(run.summary(), run.result())


def run_import(importer_class: Callable[..., FileImport], path: Path | str, **kwargs: Any) -> FileImport:
    importer = importer_class(path, **kwargs)
    importer.execute()
    return importer


def chunked(values: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def upsert_rows(
    model: type[models.Model], keys: Sequence[str], values: Sequence[str], rows: Sequence[tuple]
) -> tuple[int, int]:
    """INSERT rows (keys + values), or UPDATE the values of the row with the same keys when they
    differ. Returns (inserted, updated); the other rows were unchanged. The same work for a first
    load and a refresh.

    PostgreSQL: COPY into a temporary table, then one INSERT ... SELECT (one statement per row over
    the network would cost more than the whole scan), which returns `xmax = 0` for each row it
    wrote: true where it inserted, false where it updated. SQLite: executemany of one prepared
    statement; it does not say which rows it inserted, so the rows with a key above the largest one
    before are counted after (keys only grow: AUTOINCREMENT), which costs what was inserted, not the
    size of the table.
    """
    if not rows:
        return 0, 0
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    fields = [*keys, *values]
    column = {f: qn(model._meta.get_field(f).column) for f in fields}
    columns = ", ".join(column[f] for f in fields)
    postgresql = connection.vendor == "postgresql"
    differs = " IS DISTINCT FROM " if postgresql else " IS NOT "
    conflict = (
        f"ON CONFLICT ({', '.join(column[f] for f in keys)}) DO UPDATE SET "
        + ", ".join(f"{column[f]} = excluded.{column[f]}" for f in values)
        + " WHERE "
        + " OR ".join(f"{table}.{column[f]}{differs}excluded.{column[f]}" for f in values)
    )
    with connection.cursor() as cursor:
        if postgresql:
            raw = cursor.cursor  # the psycopg cursor, for COPY
            raw.execute("DROP TABLE IF EXISTS liaison_rows")
            raw.execute(f"CREATE TEMP TABLE liaison_rows AS SELECT {columns} FROM {table} WITH NO DATA")  # noqa: S608 (quoted names)
            with raw.copy(f"COPY liaison_rows ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            raw.execute(
                f"INSERT INTO {table} ({columns}) SELECT {columns} FROM liaison_rows {conflict} "  # noqa: S608 (quoted names)
                "RETURNING (xmax = 0)"
            )
            inserted_flags = [flag for (flag,) in raw.fetchall()]
            raw.execute("DROP TABLE liaison_rows")
            return sum(inserted_flags), len(inserted_flags) - sum(inserted_flags)
        last = model.objects.aggregate(last=models.Max("pk"))["last"] or 0
        sql = f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))}) {conflict}"  # noqa: S608 (quoted names)
        affected = 0
        for chunk in chunked(rows, 5000):
            cursor.executemany(sql, chunk)
            affected += max(cursor.rowcount, 0)
    inserted = model.objects.filter(pk__gt=last).count()
    return inserted, affected - inserted
