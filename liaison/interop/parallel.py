"""Building rows in worker processes, for large imports.

Per row, most of the time goes to pure computation: parsing, the intake checks, the blind
indexes, encrypting the patient fields and adapting the values for the database. Worker
processes do that for chunks of rows while the main process reads the file, asks the database
(referrers, rows already imported) and inserts. Workers never touch the database: they get our
sites, physicians and service lines once, the ids of each chunk's referrers with it, and the
main process's encryption keys (so that they encrypt exactly as the main process would). Processes are spawned, not
forked: a fork would share the main process's database connection.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import time
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
    when at least 1.5 CPUs are idle right now: on a busy machine more processes only add
    contention (measured: slower than one process)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if not total or total < PARALLEL_MIN_ROWS or cpus < 2:
        return 0
    idle = idle_cpus(cpus)
    return min(cpus, MAX_WORKERS, max(2, round(idle))) if idle >= 1.5 else 0


def idle_cpus(cpus: int, sample: float = 0.3) -> float:
    """How many of the machine's CPUs were idle over the next `sample` seconds (Linux:
    /proc/stat, which counts them all). Elsewhere, `cpus` minus the 1-minute load average, which
    on Linux also counts tasks waiting for the disk and kernel threads (a machine doing nothing
    showed 0.9)."""
    try:
        first = _cpu_times()
        time.sleep(sample)
        second = _cpu_times()
    except (OSError, ValueError, IndexError):
        busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        return cpus - busy
    total = sum(second) - sum(first)
    idle = (second[3] + second[4]) - (first[3] + first[4])  # idle + iowait
    return idle / total * (os.cpu_count() or cpus) if total > 0 else float(cpus)


def _cpu_times() -> list[int]:
    with open("/proc/stat", encoding="ascii") as f:
        fields = f.readline().split()
    if fields[0] != "cpu":
        raise ValueError("/proc/stat")
    return [int(x) for x in fields[1:]]


def as_values(built: list[BuiltRow]) -> list[BuiltRow]:
    """Each good row's referral replaced by its column values, encrypted and adapted for the
    database (Inserter.prepare), so that the main process only inserts them."""
    from liaison.core.rows import Inserter
    from liaison.referrals.models import Referral

    inserter = Inserter(Referral)
    for b in built:
        if b.referral is not None:
            b.values, b.referral = inserter.prepare(inserter.values(b.referral)), None
    return built


def build_in_workers(
    builder: RowBuilder, chunks: Iterable[list[tuple[int, list[Any]]]], workers: int
) -> Iterator[list[BuiltRow]]:
    """The chunks, built by `workers` processes and classified here, in the order they came;
    rows come back as values ready to insert (as_values). Falls back to this process if the
    pool cannot start."""
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
            future = pool.submit(workers_module.build, to_build, builder.referrer_ids(to_build))
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
        yield as_values(builder.build_chunk(chunk))
