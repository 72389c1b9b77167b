"""Reading the big public files: a scan streams and filters them, Python sees only the kept rows.

The CMS files are large (NPPES ~10 GB, shared-patient pairs tens of millions of rows). Two readers,
both streaming in file order, so that memory stays flat whatever the size of the file:

- `PolarsScan`, the fast one (on NPPES' 330 quoted columns it reads about three times as fast as
  DuckDB). It reads a well-formed file. At the first row it cannot read (a broken quote, too many
  or too few columns, bytes that are not UTF-8) it stops with `ScanFallback`, and the import
  carries on from its last committed batch with the careful reader.
- `CsvScan` (DuckDB), the careful one: rows it cannot parse are set aside with their line number
  (`store_rejects`) and reported; the import goes on with the good rows. Importers without a
  Polars plan (utilisation), and gzipped files, always use it.

`read_ahead` runs either in a thread of its own, a few batches ahead of the import's writing.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import json
import logging
import queue
import re
import shutil
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from django.conf import settings

logger = logging.getLogger(__name__)

# One progress "tick" row per this many rows read (chosen by a hash, so about that many): the filter
# lets them through so that a sparse filter (a few thousand rows of nine million) still moves the
# progress bar.
TICK_EVERY = 1024


class ImportFileError(Exception):
    """The file cannot be imported at all; the message names the file and says why."""


class ScanFallback(Exception):
    """The fast reader met a row it cannot read: read on with the careful one, which names it."""


@dataclass
class SourceFile:
    """The file to read: the one given, or the member extracted from a zip."""

    given: Path
    path: Path
    label: str  # what messages call it: "npidata.zip (npidata_pfile_2025.csv)"
    member: str = ""

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def _human(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@contextlib.contextmanager
def open_source(
    path: Path, choose_member: Callable[[list[zipfile.ZipInfo]], zipfile.ZipInfo | None]
) -> Iterator[SourceFile]:
    """The CSV to read. A zip (as CMS publishes them) is checked and its data member extracted to
    MARKETDATA_TMP_DIR, streaming, and removed afterwards."""
    path = Path(path)
    if not path.is_file():
        raise ImportFileError(f"{path}: no such file")
    if path.suffix.lower() == ".xlsx" or not zipfile.is_zipfile(path):
        if path.suffix.lower() == ".zip":
            raise ImportFileError(
                f"{path.name}: not a readable zip file (the download is probably incomplete or damaged: "
                "download it again)"
            )
        yield SourceFile(given=path, path=path, label=path.name)
        return
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ImportFileError(f"{path.name}: not a readable zip file ({exc}); download it again") from exc
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        member = choose_member(infos)
        if member is None:
            names = ", ".join(i.filename for i in infos[:10]) or "nothing"
            raise ImportFileError(f"{path.name}: the zip holds no file of this kind (it holds {names})")
        tmp_root = Path(settings.MARKETDATA_TMP_DIR)
        tmp_root.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(tmp_root).free
        if member.file_size > free:
            raise ImportFileError(
                f"{path.name}: unzipping {member.filename} needs {_human(member.file_size)} in "
                f"{tmp_root} but only {_human(free)} is free (set MARKETDATA_TMP_DIR to a larger disk, "
                "or unzip it yourself and import the CSV)"
            )
        tmp_dir = Path(tempfile.mkdtemp(prefix="import-", dir=tmp_root))
        target = tmp_dir / Path(member.filename).name
        label = f"{path.name} ({Path(member.filename).name})"
        try:
            try:
                with archive.open(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 16 * 1024 * 1024)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
                raise ImportFileError(
                    f"{label}: the zip is damaged or truncated ({exc}); download it again"
                ) from exc
            yield SourceFile(given=path, path=target, label=label, member=member.filename)
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)


def largest_member(suffixes: Sequence[str]) -> Callable[[list[zipfile.ZipInfo]], zipfile.ZipInfo | None]:
    def choose(infos: list[zipfile.ZipInfo]) -> zipfile.ZipInfo | None:
        candidates = [i for i in infos if i.filename.lower().endswith(tuple(suffixes))]
        return max(candidates, key=lambda i: i.file_size, default=None)

    return choose


def _open_text(path: Path) -> io.TextIOBase:
    raw = gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb")  # noqa: SIM115
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")


def first_lines(path: Path, n: int = 2) -> list[list[str]]:
    """The first `n` records, parsed as CSV (for detecting the kind of file)."""
    with _open_text(path) as f:
        head = f.read(256 * 1024)
    if "\x00" in head:
        return []
    rows = []
    for row in csv.reader(io.StringIO(head)):
        rows.append([c.strip() for c in row])
        if len(rows) >= n:
            break
    return rows


def average_line_bytes(path: Path) -> float:
    if path.suffix.lower() == ".gz":
        return 0.0
    with open(path, "rb") as f:
        sample = f.read(1024 * 1024)
    lines = sample.count(b"\n")
    return len(sample) / lines if lines else 0.0


def file_key(path: Path, *parts: Any) -> str:
    """Identifies 'the same file with the same filters' cheaply (a 10 GB file is not hashed whole)."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(json.dumps([path.name, size, *parts], sort_keys=True, default=str).encode())
    with open(path, "rb") as f:
        h.update(f.read(1024 * 1024))
        if size > 2 * 1024 * 1024:
            f.seek(-1024 * 1024, 2)
            h.update(f.read())
    return h.hexdigest()


def sql_string(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class Reject:
    line: int | None
    reason: str
    key: str = ""


# The NPI rule of `nppes_rows.npi_problem` (10 digits, the first 1 or 2, and the Luhn check digit
# with the 80840 prefix, which adds 24) in SQL: importers check millions of NPIs in DuckDB's threads.
NPI_OK = """
CREATE MACRO npi_ok(n) AS CASE WHEN regexp_full_match(coalesce(n, ''), '[12][0-9]{9}') THEN
    (24 + list_sum(list_transform(range(10), lambda i: CASE WHEN i % 2 = 0
        THEN [0, 2, 4, 6, 8, 1, 3, 5, 7, 9][ascii(n[i + 1]) - 47] ELSE ascii(n[i + 1]) - 48 END))) % 10 = 0
    ELSE false END
"""


def trimmed(column: str) -> pl.Expr:
    """The column without leading and trailing spaces, as DuckDB's `trim()` (spaces only)."""
    return pl.col(column).str.strip_chars(" ")


def npi_ok(npi: pl.Expr) -> pl.Expr:
    """`NPI_OK` in Polars."""
    digits = [npi.str.slice(i, 1).cast(pl.Int64, strict=False) for i in range(10)]
    doubled = [d * 2 - (d >= 5).cast(pl.Int64) * 9 for d in digits[0:10:2]]
    total = pl.sum_horizontal(pl.lit(24), *doubled, *digits[1:10:2])
    return pl.when(npi.str.contains(r"^[12][0-9]{9}$")).then(total % 10 == 0).otherwise(False)


@dataclass
class CsvScan:
    """A DuckDB scan of one CSV file with named VARCHAR (or typed) columns."""

    path: Path
    columns: list[str]
    header: bool = True
    types: dict[str, str] = field(default_factory=dict)
    label: str = ""

    def __post_init__(self) -> None:
        self.con = duckdb.connect()
        # Order of the kept rows = order in the file: resuming skips what was committed.
        self.con.execute("SET preserve_insertion_order = true")
        self.con.execute("SET memory_limit = '1GB'")
        self.con.execute(
            f"SET temp_directory = {sql_string(str(Path(settings.MARKETDATA_TMP_DIR) / 'duckdb'))}"
        )
        self.con.execute("SET enable_profiling = 'no_output'")
        self.con.execute("SET enable_progress_bar = false")
        self.con.execute(NPI_OK)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.con.close()

    def source(self) -> str:
        cols = ", ".join(f"{sql_string(c)}: {sql_string(self.types.get(c, 'VARCHAR'))}" for c in self.columns)
        return (
            f"read_csv({sql_string(str(self.path))}, columns = {{{cols}}}, header = {str(self.header).lower()}, "
            "auto_detect = false, delim = ',', quote = '\"', escape = '\"', ignore_errors = true, "
            "store_rejects = true, rejects_scan = 'liaison_reject_scans', rejects_table = 'liaison_reject_errors')"
        )

    def table(self, name: str, values: Sequence[str]) -> None:
        """A one-column temporary table the filter can join against (NPIs, ZIP codes, states...)."""
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} (v VARCHAR)")
        if values:
            self.con.execute(f"INSERT INTO {name} SELECT unnest($1::VARCHAR[])", [list(values)])

    def stream(self, select: str, keep: str, tick_column: str, batch_size: int) -> Iterator[list[tuple]]:
        """Batches of (keep, *selected) rows in file order: kept rows, plus sparse progress ticks
        (keep = false) so that the caller can advance a progress bar."""
        query = (
            f"SELECT * FROM (SELECT ({keep}) AS keep, hash({sql_ident(tick_column)}) % {TICK_EVERY} = 0 AS tick, "  # noqa: S608 (identifiers quoted; values go through tables)
            f"{select} FROM {self.source()}) WHERE keep OR tick"
        )
        try:
            result = self.con.execute(query)
            # fetchmany(n) waits for n rows: small at first, so that a sparse result reports
            # progress often; growing while the rows come quickly.
            size = 64
            while True:
                rows = result.fetchmany(size)
                if not rows:
                    return
                yield rows
                if len(rows) == size:
                    size = min(size * 2, batch_size)
        except duckdb.IOException as exc:
            raise ImportFileError(f"{self.label}: cannot read the file ({exc})") from exc
        except duckdb.InvalidInputException as exc:
            raise ImportFileError(f"{self.label}: {_first_line(exc)}") from exc

    def rows_scanned(self) -> int | None:
        """Good rows DuckDB read in the last scan (from its profiler), or None if it did not say."""
        try:
            info = json.loads(self.con.get_profiling_information(format="json"))
        except Exception:  # the profiler's output is informative only
            logger.warning("DuckDB profiling information unavailable", exc_info=True)
            return None
        found: list[int] = []

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                function = str((node.get("extra_info") or {}).get("Function", "")).upper()
                if "rows_scanned" in node and function.startswith("READ_CSV"):
                    found.append(int(node["rows_scanned"]))
                for v in node.values():
                    walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)

        walk(info)
        return max(found) if found else None

    def rejects(self) -> list[Reject]:
        try:
            rows = self.con.execute(
                "SELECT line, column_name, error_type, error_message FROM liaison_reject_errors ORDER BY line"
            ).fetchall()
        except duckdb.Error:
            return []
        out: dict[int, Reject] = {}
        for line, column, error_type, message in rows:
            if line in out:
                continue
            reason = _reject_reason(str(error_type), str(message), column)
            out[line] = Reject(line=int(line), reason=reason)
        return list(out.values())

    def locate(self, keys: Sequence[str], fields: int = 1) -> dict[str, int]:
        """Line numbers of the rows whose first `fields` fields (joined by commas) are one of `keys`.

        Used only to name the rows Python rejected: a second, cheap pass that splits lines without
        parsing them as CSV, so that its numbers are the file's physical lines."""
        if not keys:
            return {}
        self.table("liaison_locate", list(dict.fromkeys(keys)))
        lines = (
            f"read_csv({sql_string(str(self.path))}, columns = {{'line': 'VARCHAR'}}, header = false, "
            f"auto_detect = false, delim = {sql_string(chr(1))}, quote = '', escape = '', strict_mode = false, "
            "ignore_errors = true)"
        )
        first = " || ',' || ".join(f"trim(split_part(line, ',', {i}), '\" ')" for i in range(1, fields + 1))
        query = (
            f"SELECT ordinality, {first} AS k FROM {lines} WITH ORDINALITY "  # noqa: S608 (identifiers quoted; values go through tables)
            f"WHERE {first} IN (SELECT v FROM liaison_locate)"
        )
        found: dict[str, int] = {}
        for line_no, key in self.con.execute(query).fetchall():
            found.setdefault(key, int(line_no))
        return found


_ROW = "__liaison_row"


@dataclass
class PolarsPlan:
    """What a Polars scan keeps and returns: the same rows and values as the importer's SQL."""

    select: list[pl.Expr]
    keep: pl.Expr
    chunk_rows: int = 0  # rows read per batch, if not PolarsScan's
    # Columns read as numbers (Float64) instead of text: cheaper, and a value that is not a number
    # stops the scan like any other row Polars cannot read (the careful reader then names it).
    numeric: tuple[str, ...] = ()
    # A cheaper test than `keep` that every kept row passes: worked out for each row read, `keep`
    # only for the rows it lets through.
    maybe: pl.Expr | None = None


@dataclass
class PolarsScan:
    """A Polars scan of one well-formed CSV file with named columns, text except those a plan reads
    as numbers (see the module doc)."""

    path: Path
    columns: list[str]
    header: bool = True
    label: str = ""
    scanned: int = 0
    chunk_rows = 50_000  # rows read per batch (~50 MB of NPPES' selected columns)

    def _frame(self, numeric: Sequence[str] = ()) -> pl.LazyFrame:
        return pl.scan_csv(
            self.path,
            has_header=False,
            skip_rows=1 if self.header else 0,
            schema={c: pl.Float64 if c in numeric else pl.String for c in self.columns},
            quote_char='"',
            encoding="utf8",
            row_index_name=_ROW,
            raise_if_empty=False,
        )

    def stream(self, plan: PolarsPlan) -> Iterator[list[tuple]]:
        """Batches of (keep, tick, *selected) rows in file order, as `CsvScan.stream` gives them.

        Polars filters each batch after reading it, not while reading: each batch then starts where
        the last one ended, which is checked, because the streaming engine does not keep the file's
        order once it has met a row it cannot read (it may hand over a later batch before it fails).
        """
        # A row with fewer fields than the header comes back padded with nulls (NPPES quotes every
        # field, so an empty one reads as ""): the careful reader rejects it by line number.
        keep = plan.keep.fill_null(False).alias("__keep")
        flags = [
            (keep if plan.maybe is None else plan.maybe.fill_null(False).alias("__keep")),
            (pl.col(_ROW) % TICK_EVERY == 0).alias("__tick"),
            pl.col(self.columns[-1]).is_null().alias("__short"),
        ]
        # Only the flags are computed for every row; the selected values for the rows let through.
        used = sorted({name for expr in [*plan.select, keep] for name in expr.meta.root_names()})
        frame = self._frame(plan.numeric).select(pl.col(_ROW), *flags, *[pl.col(c) for c in used])
        through = pl.col("__keep") | pl.col("__tick") | pl.col("__short")
        expected = 0
        try:
            for df in frame.collect_batches(chunk_size=plan.chunk_rows or self.chunk_rows):
                if not df.height:
                    continue
                if df[_ROW][0] != expected:
                    raise ScanFallback(f"rows out of order at line {expected + 1 + self.header}")
                expected += df.height
                if df["__short"].any():
                    raise ScanFallback("a row with fewer columns than the header")
                yield (
                    df.filter(through)
                    .select("__keep" if plan.maybe is None else keep, "__tick", *plan.select)
                    .rows()
                )
        except ScanFallback:
            raise
        except Exception as exc:  # whatever Polars cannot read, DuckDB reads or explains
            raise ScanFallback(_first_line(exc)) from exc
        self.scanned = expected

    def rows_scanned(self) -> int:
        return self.scanned

    def rejects(self) -> list[Reject]:
        return []  # it stops at the first row it cannot read instead (ScanFallback)

    def locate(self, keys: Sequence[str], fields: int = 1) -> dict[str, int]:
        careful = CsvScan(self.path, self.columns, header=self.header, label=self.label)
        try:
            return careful.locate(keys, fields)
        finally:
            careful.close()

    def close(self) -> None:
        pass


def read_ahead(batches: Iterator[list[tuple]], depth: int = 4) -> Iterator[list[tuple]]:
    """The batches, read by a thread up to `depth` ahead: the reader (Polars or DuckDB, mostly
    outside the GIL) reads the next ones while the import writes the last. What the reader raises
    is raised here, in order; closing this generator stops the thread."""
    handed: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def hand(item: Any) -> bool:
        while not stop.is_set():
            try:
                handed.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for batch in batches:
                if not hand((batch, None)):
                    return
            hand((end, None))
        except BaseException as exc:  # handed to the reading thread
            hand((end, exc))

    thread = threading.Thread(target=pump, name="read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            batch, exc = handed.get()
            if exc is not None:
                raise exc
            if batch is end:
                return
            yield batch
    finally:
        stop.set()
        thread.join()
        batches.close()


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:300]


_REASONS = {
    "UNQUOTED VALUE": "broken quote (a quote that is not closed, or text after a closing quote)",
    "TOO MANY COLUMNS": "more columns than the header",
    "MISSING COLUMNS": "fewer columns than the header",
    "CAST": "a value of the wrong type",
    "INVALID UNICODE": "characters that are not valid UTF-8",
    "LINE SIZE OVER MAXIMUM": "a line longer than the maximum (is it really a CSV?)",
}


def _reject_reason(error_type: str, message: str, column: str | None) -> str:
    reason = _REASONS.get(error_type.upper(), message.splitlines()[0][:200] if message else error_type)
    if error_type.upper() == "CAST" and message:
        reason = f"{reason}: {message.splitlines()[0][:160]}"
    if column and error_type.upper() in ("UNQUOTED VALUE", "CAST"):
        reason += f" in column {column}"
    return f"unreadable row: {reason}"


_YEAR_RE = re.compile(r"(?<!\d)(20\d\d)(?!\d)")
_DYEAR_RE = re.compile(r"(?i)(?:^|[_\-.])D(\d\d)(?:[_\-.]|$)")


def year_from_name(name: str) -> int | None:
    """The data year in a CMS file name: 'MUP_PHY_R24_P05_V10_D22_Prov_Svc.csv' -> 2022,
    'physician-shared-patient-patterns-2015-days30.txt' -> 2015."""
    if m := _DYEAR_RE.search(name):
        return 2000 + int(m.group(1))
    if m := _YEAR_RE.search(name):
        return int(m.group(1))
    return None
