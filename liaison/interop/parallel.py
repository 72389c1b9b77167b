"""Building rows in worker processes, for large imports.

Per row, most of the time goes to pure computation: parsing, the intake checks, the blind
indexes and encrypting the patient fields (Fernet, about 8 µs a field). Worker processes do that
for chunks of rows while the main process reads the file, asks the database (referrers, rows
already imported) and inserts. Workers never touch the database: they get our sites, physicians
and service lines once, the referrers of each chunk with it, and the main process's encryption
keys (so that they encrypt exactly as the main process would). Processes are spawned, not
forked: a fork would share the main process's database connection.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from django.conf import settings

from liaison.interop import workers as workers_module
from liaison.interop.tabular import BuiltRow, RowBuilder

logger = logging.getLogger(__name__)

PARALLEL_MIN_ROWS = 20_000
MAX_WORKERS = 4
_SETTINGS = ("PHI_KEYS", "PHI_INDEX_KEY", "TIME_ZONE", "USE_TZ")


def worker_count(total: int | None) -> int:
    """Worker processes worth starting for this many rows (0: build in this process). Only
    when the CPUs are mostly idle (1-minute load average): on a busy machine more processes
    only add contention (measured: slower than one process)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if not total or total < PARALLEL_MIN_ROWS or cpus < 2:
        return 0
    busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    idle = cpus - busy
    return min(cpus, MAX_WORKERS, max(2, round(idle))) if idle >= 1.5 else 0


def encrypt_in_place(referral: Any) -> None:
    """Replace the patient fields by their ciphertext, ready for insert_rows(pre_encrypted=True),
    and drop the related objects cached for validation (the ids stay) so little travels back."""
    from liaison.core.phi import EncryptedTextField

    for f in type(referral)._meta.concrete_fields:
        if isinstance(f, EncryptedTextField):
            referral.__dict__[f.attname] = f.get_prep_value(referral.__dict__[f.attname])
    referral._state.fields_cache = {}


def build_in_workers(
    builder: RowBuilder, chunks: Iterable[list[tuple[int, list[Any]]]], workers: int
) -> Iterator[list[BuiltRow]]:
    """The chunks, built by `workers` processes and classified here, in the order they came;
    rows come back encrypted. Falls back to this process if the pool cannot start."""
    # Pickled here, unpickled by the worker once Django is set up (it holds model instances).
    state = pickle.dumps(
        {"spec": builder.spec, "headers": builder.headers, "tables": builder.tables, "now": builder.now}
    )
    values = {name: getattr(settings, name) for name in _SETTINGS}
    context = multiprocessing.get_context("spawn")
    chunks = iter(chunks)
    try:
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=workers_module.start,
            initargs=(os.environ.get("DJANGO_SETTINGS_MODULE", "liaison.settings"), values, state),
        )
    except (OSError, ValueError, NotImplementedError) as exc:
        logger.warning("import: no worker processes (%s), building rows here", type(exc).__name__)
        yield from _here(builder, chunks)
        return
    pending: deque[tuple[Future[list[BuiltRow]], list[BuiltRow]]] = deque()
    try:
        for chunk in chunks:
            to_build, known = builder.split_known(chunk)
            future = pool.submit(workers_module.build, to_build, builder.providers_for(to_build))
            pending.append((future, known))
            if len(pending) >= 2 * workers:
                future, known = pending.popleft()
                yield builder.classify(future.result(), known)
        while pending:
            future, known = pending.popleft()
            yield builder.classify(future.result(), known)
    except BrokenProcessPool:
        raise RuntimeError("a worker process of the import died (out of memory?)") from None
    finally:
        for future, _ in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _here(builder: RowBuilder, chunks: Iterable[list[tuple[int, list[Any]]]]) -> Iterator[list[BuiltRow]]:
    for chunk in chunks:
        built = builder.build_chunk(chunk)
        for b in built:
            if b.referral is not None:
                encrypt_in_place(b.referral)
        yield built
