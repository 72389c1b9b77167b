"""Benchmark: `liaison import nppes` and `liaison import shared-patients` on full-size files.

    .venv/bin/python bench/nppes_import.py                              # 1 GB NPPES file, 20M pairs
    .venv/bin/python bench/nppes_import.py --size 100MB --pairs 2000000 # a quick run

It generates, in a scratch folder, an NPPES-shaped file (330 columns, every value quoted, most of
the licence and identifier columns empty, ~1.2 KB a row like the real one, 0.6% of the providers
practising around Columbus) and a CMS-format shared-patient file. Then, each in its own process
(so that its peak memory is its own), on the same files with the same filter ("within 25 miles of
our three Columbus sites", and for the pairs "touching a provider near our sites or one of ours"):

- ours:  `liaison import nppes FILE --radius 25`, then `liaison import shared-patients FILE`, end to
         end (Polars scan read ahead in a thread, checks, directory writes, changes report,
         scoring) into a fresh database; then both again (the monthly refresh), and the NPPES
         refresh once more with DuckDB as the only reader (MARKETDATA_FAST_SCAN=false);
- floor: a Polars scan of the same columns with the same filter, collected in memory (no database):
         what reading the file costs at least;
- plain: Python's csv module over every row (DictReader, the idiomatic way to read named columns,
         and reader with column positions, the tuned way), the same filter in Python, Django
         bulk_create of the kept rows (a practice, an office and a provider per individual).

Prints the times, ours / floor, plain / ours and each process's peak RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from importlib import import_module
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CENTRE = (39.9612, -82.9988)  # Columbus
SITES = [("Downtown", "43215", "Columbus"), ("North", "43081", "Westerville"), ("Dublin", "43017", "Dublin")]
RADIUS = 25
PATHS = {"ours": "", "ours-read": "read", "ours-parse": "parse"}  # our import, and its parts (--parts)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="1GB", help="NPPES file size, e.g. 1GB, 200MB (default 1GB)")
    p.add_argument("--pairs", type=int, default=20_000_000, help="shared-patient pairs (default 20M)")
    p.add_argument("--data", type=Path, help="keep the generated files here (and reuse them next time)")
    p.add_argument("--database-url", default="", help="default: a scratch SQLite file per process")
    p.add_argument("--skip-plain", action="store_true", help="skip the slow plain path")
    p.add_argument(
        "--parts",
        action="store_true",
        help="also time a first NPPES import that only reads, and one that reads and parses without "
        "writing the directory or scoring: where the time over the floor goes",
    )
    p.add_argument("--child", choices=[*PATHS, "floor", "plain", "plain-reader"], help=argparse.SUPPRESS)
    return p.parse_args()


def size_bytes(text: str) -> int:
    m = re.fullmatch(r"(?i)\s*(\d+(?:\.\d+)?)\s*(gb|mb|kb|b)?\s*", text)
    if not m:
        raise SystemExit(f"--size {text}: give e.g. 1GB or 200MB")
    return int(
        float(m.group(1))
        * {"gb": 1 << 30, "mb": 1 << 20, "kb": 1 << 10, "b": 1, None: 1}[(m.group(2) or "b").lower()]
    )


def timed(fn):
    """(result, wall seconds, CPU seconds of this process: all its threads). On a shared machine the
    CPU time says what the work costs; the wall time what it took with the neighbours."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    result = fn()
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return result, time.perf_counter() - start, cpu


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss it is not inherited across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- generating the files --------------------------------------------------------------------


def generate(data: Path, nppes_bytes: int, pairs: int) -> dict:
    meta_path = data / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta["nppes_target"] == nppes_bytes and meta["pairs"] == pairs:
            print(f"reusing the files in {data}")
            return meta
    import duckdb

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "liaison.settings")
    import django

    django.setup()
    from liaison.marketdata.synthetic import generate_nppes_file

    data.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    nppes = generate_nppes_file(data / "npidata_pfile_bench.csv", target_bytes=nppes_bytes, centre=CENTRE)
    print(
        f"generated {nppes.path.name}: {nppes.bytes / 1e6:,.0f} MB, {nppes.rows:,} rows in {time.perf_counter() - t:.0f} s"
    )
    t = time.perf_counter()
    pairs_path = data / "physician-shared-patient-patterns-2015-days30.txt"
    con = duckdb.connect()
    con.execute(
        f"CREATE TABLE npis AS SELECT (row_number() OVER () - 1)::BIGINT AS i, npi FROM read_csv('{nppes.path}', "
        "columns = {'npi': 'VARCHAR'}, header = true, auto_detect = false, strict_mode = false, "
        "quote = '\"', delim = ',', ignore_errors = true)"
    )
    count = con.execute("SELECT count(*) FROM npis").fetchone()[0]
    con.execute(
        f"COPY (SELECT a.npi, b.npi, 11 + hash(r * 3) % 400, 11 + hash(r * 5) % 150, hash(r * 7) % 9 "
        f"FROM range({pairs}) t(r) JOIN npis a ON a.i = hash(r) % {count} "
        f"JOIN npis b ON b.i = hash(r * 13 + 1) % {count} ORDER BY r) TO '{pairs_path}' (HEADER false)"
    )
    con.close()
    print(
        f"generated {pairs_path.name}: {pairs_path.stat().st_size / 1e6:,.0f} MB, {pairs:,} pairs in {time.perf_counter() - t:.0f} s"
    )
    meta = {
        "nppes": str(nppes.path),
        "nppes_target": nppes_bytes,
        "nppes_bytes": nppes.bytes,
        "nppes_rows": nppes.rows,
        "pairs_path": str(pairs_path),
        "pairs": pairs,
        "pairs_bytes": pairs_path.stat().st_size,
        "ours": nppes.local_npis[:8],
    }
    meta_path.write_text(json.dumps(meta))
    return meta


# --- the three paths, each in its own process --------------------------------------------------


def child_setup(database_url: str, scratch: Path) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "liaison.settings"
    os.environ["LIAISON_VAR_DIR"] = str(scratch)
    os.environ["DATABASE_URL"] = database_url or f"sqlite:///{scratch / 'bench.sqlite3'}"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if database_url:
        call_command("flush", interactive=False, verbosity=0)
        from liaison.directory.taxonomy import load_builtin

        load_builtin()


def our_directory(meta: dict) -> list:
    from liaison.directory import services

    ours = services.create_practice(actor="bench", name="Bench Orthopaedics", is_ours=True)
    sites = [
        services.create_location(
            ours, actor="bench", name=name, address_line1="1 Main St", city=city, state="OH", zip_code=z
        )
        for name, z, city in SITES
    ]
    for i, npi in enumerate(meta["ours"]):
        services.create_provider(
            actor="bench",
            first_name="Our",
            last_name=f"Surgeon{i}",
            npi=npi,
            is_ours=True,
            primary_taxonomy_code="207X00000X",
            locations=[sites[i % 3]],
        )
    return sites


def preload() -> None:
    """The floor imports Polars before its clock starts; ours loads the modules the command loads
    (Polars among them) first too, as a worker running imports from the admin page has them."""
    for module in import_module("liaison.core.management.commands.import").IMPORTERS.values():
        import_module(module)


def at_rest() -> None:
    """Before each timed import, what the server does on its own between two imports: PostgreSQL
    writes out the last import's pages and its autovacuum analyses the new rows. Otherwise that
    work, set off by the import before, lands on the two cores during the next one (a monthly
    refresh then took 1.9 s instead of 1.5 s). SQLite has no such background work."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("CHECKPOINT")
            cursor.execute("VACUUM ANALYZE")


def run_ours(meta: dict) -> dict:
    import io

    from django.core.management import call_command

    from liaison.marketdata.models import ImportRun

    our_directory(meta)
    preload()

    def command(*args: str):
        at_rest()
        return lambda: call_command("import", *args, stdout=io.StringIO())

    nppes = ["nppes", meta["nppes"], "--radius", str(RADIUS)]
    pairs = ["shared-patients", meta["pairs_path"]]
    out: dict = {}
    _, out["nppes_seconds"], out["nppes_cpu"] = timed(command(*nppes))
    run = ImportRun.objects.get(kind="nppes")
    out["nppes_kept"], out["nppes_read"] = run.rows_kept, run.rows_read
    _, out["pairs_seconds"], out["pairs_cpu"] = timed(command(*pairs))
    run = ImportRun.objects.get(kind="shared-patients")
    out["pairs_kept"], out["pairs_read"] = run.rows_kept, run.rows_read
    # The monthly refresh: the same files again (--force), every kept row found unchanged.
    _, out["nppes_refresh_seconds"], out["nppes_refresh_cpu"] = timed(command(*nppes, "--force"))
    _, out["pairs_refresh_seconds"], out["pairs_refresh_cpu"] = timed(command(*pairs, "--force"))
    # The same refresh with DuckDB as the only reader (as after a malformed row, or with
    # MARKETDATA_FAST_SCAN=false): what the fast reader saves.
    from django.conf import settings

    settings.MARKETDATA_FAST_SCAN = False
    _, out["nppes_careful_seconds"], out["nppes_careful_cpu"] = timed(command(*nppes, "--force"))
    return out


def run_ours_part(meta: dict, part: str) -> dict:
    """Our first imports with their later steps switched off, to see where the time over the floor
    goes. "read": the scan, the filter and the batches as the import runs them, nothing written.
    "parse" (NPPES only): also each kept row parsed and compared with what is stored, but nothing
    written to the directory and no scores. The pairs ("read") are timed after a whole NPPES import,
    as in `run_ours`."""
    import io
    from unittest import mock

    from django.core.management import call_command

    from liaison.marketdata import directory_sync, nppes, shared_patients

    our_directory(meta)
    preload()
    nppes_args = ["import", "nppes", meta["nppes"], "--radius", str(RADIUS)]
    nothing = mock.Mock(return_value=None)
    if part == "read":
        skipped = [(nppes.NppesImport, "write_batch")]
    else:
        skipped = [(directory_sync.DirectorySync, "write"), (directory_sync.DirectorySync, "complete")]
    with contextlib.ExitStack() as stack:
        for cls, name in [(nppes.NppesImport, "after"), *skipped]:
            stack.enter_context(mock.patch.object(cls, name, nothing))
        at_rest()
        _, seconds, cpu = timed(lambda: call_command(*nppes_args, stdout=io.StringIO()))
    out = {"nppes_seconds": seconds, "nppes_cpu": cpu}
    if part == "read":
        call_command(*nppes_args, "--force", stdout=io.StringIO())  # the directory the pairs need
        pairs = shared_patients.SharedPatientsImport
        with mock.patch.object(pairs, "write_batch", nothing), mock.patch.object(pairs, "after", nothing):
            at_rest()
            args = ["import", "shared-patients", meta["pairs_path"]]
            _, out["pairs_seconds"], out["pairs_cpu"] = timed(
                lambda: call_command(*args, stdout=io.StringIO())
            )
    return out


def _near_zips(sites: list) -> list[str]:
    from liaison.core.geo import zips_near

    return zips_near([(s.latitude, s.longitude) for s in sites], RADIUS)


def run_floor(meta: dict) -> dict:
    import polars as pl

    from liaison.core.geo import zip_info
    from liaison.marketdata.nppes_columns import WANTED

    zips = _near_zips(
        [
            type("Site", (), {"latitude": i.latitude, "longitude": i.longitude})
            for i in (zip_info(z) for _, z, _ in SITES)
        ]
    )
    columns = list(WANTED.values())
    zip_column = WANTED["zip_code"]
    kept, nppes_seconds, nppes_cpu = timed(
        lambda: (
            pl.scan_csv(meta["nppes"], infer_schema=False)
            .select(columns)
            .filter(pl.col(zip_column).str.slice(0, 5).is_in(zips) | pl.col("NPI").is_in(meta["ours"]))
            .collect()
        )
    )
    interesting = set(kept.filter(pl.col("Entity Type Code") == "1")["NPI"].to_list()) | set(meta["ours"])
    pairs, pairs_seconds, pairs_cpu = timed(
        lambda: (
            pl.scan_csv(
                meta["pairs_path"],
                has_header=False,
                new_columns=["npi1", "npi2", "pair_count", "bene_count", "same_day_count"],
                schema_overrides={"npi1": pl.String, "npi2": pl.String},
            )
            .filter(pl.col("npi1").is_in(interesting) | pl.col("npi2").is_in(interesting))
            .collect()
        )
    )
    return {
        "nppes_seconds": nppes_seconds,
        "nppes_cpu": nppes_cpu,
        "nppes_kept": kept.height,
        "pairs_seconds": pairs_seconds,
        "pairs_cpu": pairs_cpu,
        "pairs_kept": pairs.height,
    }


def run_plain(meta: dict, dict_reader: bool) -> dict:
    """The obvious way: the csv module (DictReader, the idiomatic one for a file with named columns,
    or reader with column positions), the filter in Python, bulk_create of what is kept."""
    import csv

    from liaison.core.geo import normalize_zip
    from liaison.directory.models import Location, Practice, Provider
    from liaison.marketdata.models import SharedPatientDataset, SharedPatientPair
    from liaison.marketdata.nppes_columns import WANTED

    sites = our_directory(meta)
    zips = set(_near_zips(sites))
    ours = set(meta["ours"])
    names = {
        k: WANTED[k]
        for k in (
            "org_name",
            "last_name",
            "first_name",
            "credential",
            "address_line1",
            "city",
            "state",
            "zip_code",
            "entity_type",
        )
    }

    def flush(rows: list[dict]) -> None:
        practices, locations, providers = [], [], []
        for r in rows:
            individual = r["entity_type"] == "1"
            practice = Practice(
                name=r["org_name"] or f"Practice at {r['address_line1']}",
                organization_npi="" if individual else r["npi"],
                source="nppes",
            )
            practices.append(practice)
            loc = Location(
                practice=practice,
                address_line1=r["address_line1"],
                city=r["city"],
                state=r["state"],
                zip_code=normalize_zip(r["zip_code"]) or r["zip_code"][:5],
                source="nppes",
            )
            loc.clean()
            locations.append(loc)
            if individual:
                providers.append(
                    (
                        Provider(
                            npi=r["npi"],
                            first_name=r["first_name"],
                            last_name=r["last_name"],
                            credential=r["credential"],
                            source="nppes",
                        ),
                        loc,
                    )
                )
        Practice.objects.bulk_create(practices)
        for loc in locations:
            loc.practice_id = loc.practice.pk
        Location.objects.bulk_create(locations)
        Provider.objects.bulk_create([p for p, _ in providers], ignore_conflicts=True)
        through = Provider.locations.through
        through.objects.bulk_create(
            [through(provider_id=p.pk, location_id=loc.pk) for p, loc in providers if p.pk]
        )

    def load_nppes() -> int:
        kept, batch = 0, []
        with open(meta["nppes"], newline="", encoding="utf-8") as f:
            if dict_reader:
                rows = csv.DictReader(f)
                pick = lambda row: {k: row[c] for k, c in names.items()} | {"npi": row["NPI"]}  # noqa: E731
            else:
                reader = csv.reader(f)
                header = next(reader)
                at = {k: header.index(c) for k, c in names.items()}
                rows = reader
                pick = lambda row: {k: row[i] for k, i in at.items()} | {"npi": row[0]}  # noqa: E731
            for row in rows:
                r = pick(row)
                if (r["zip_code"][:5] in zips or r["npi"] in ours) and r["entity_type"]:
                    batch.append(r)
                    kept += 1
                    if len(batch) >= 2000:
                        flush(batch)
                        batch = []
            flush(batch)
        return kept

    kept, nppes_seconds, nppes_cpu = timed(load_nppes)
    interesting = set(Provider.objects.exclude(npi="").values_list("npi", flat=True))
    dataset = SharedPatientDataset.objects.create(key="plain", source="cms", year=2015, window_days=30)

    def load_pairs() -> int:
        pairs_kept = 0
        pending: list[SharedPatientPair] = []
        with open(meta["pairs_path"], newline="") as f:
            reader = (
                csv.DictReader(f, fieldnames=["npi1", "npi2", "pair_count", "bene_count", "same_day_count"])
                if dict_reader
                else csv.reader(f)
            )
            for row in reader:
                a, b, pair_count, bene_count, same_day = (
                    (row["npi1"], row["npi2"], row["pair_count"], row["bene_count"], row["same_day_count"])
                    if dict_reader
                    else row
                )
                if a in interesting or b in interesting:
                    pending.append(
                        SharedPatientPair(
                            dataset=dataset,
                            from_npi=a,
                            to_npi=b,
                            patients=int(bene_count),
                            transactions=int(pair_count),
                            same_day=int(same_day),
                        )
                    )
                    pairs_kept += 1
                    if len(pending) >= 5000:
                        SharedPatientPair.objects.bulk_create(pending, ignore_conflicts=True)
                        pending = []
        SharedPatientPair.objects.bulk_create(pending, ignore_conflicts=True)
        return pairs_kept

    pairs_kept, pairs_seconds, pairs_cpu = timed(load_pairs)
    return {
        "nppes_seconds": nppes_seconds,
        "nppes_cpu": nppes_cpu,
        "nppes_kept": kept,
        "pairs_seconds": pairs_seconds,
        "pairs_cpu": pairs_cpu,
        "pairs_kept": pairs_kept,
    }


def child(args: argparse.Namespace) -> None:
    meta = json.loads((args.data / "meta.json").read_text())
    scratch = Path(tempfile.mkdtemp(prefix=f"bench-{args.child}-"))
    if args.child == "floor":
        os.environ["DJANGO_SETTINGS_MODULE"] = "liaison.settings"
        os.environ["LIAISON_VAR_DIR"] = str(scratch)
        import django

        django.setup()
        result = run_floor(meta)
    else:
        child_setup(args.database_url, scratch)
        if args.child == "ours":
            result = run_ours(meta)
        elif args.child in PATHS:
            result = run_ours_part(meta, PATHS[args.child])
        else:
            result = run_plain(meta, dict_reader=args.child == "plain")
    result["peak_rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(result))


def spawn(path: str, args: argparse.Namespace, data: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", path, "--data", str(data)]
    if args.database_url:
        cmd += ["--database-url", args.database_url]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"{path} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(line[7:])


def main() -> None:
    args = parse()
    if args.child:
        child(args)
        return
    data = args.data or Path(tempfile.mkdtemp(prefix="liaison-bench-"))
    meta = generate(data, size_bytes(args.size), args.pairs)
    load = os.getloadavg()[0]
    results = {}
    paths = ["floor", "ours"] + (["ours-read", "ours-parse"] if args.parts else [])
    for path in paths + ([] if args.skip_plain else ["plain", "plain-reader"]):
        print(f"running {path} ...", flush=True)
        results[path] = spawn(path, args, data)
    report(meta, results, args, data, load)


def report(meta: dict, results: dict, args: argparse.Namespace, data: Path, load: float) -> None:
    ours, floor = results["ours"], results["floor"]
    db = "PostgreSQL" if args.database_url.startswith("postgres") else "SQLite"
    plain_labels = {
        "plain": f"plain: csv.DictReader + bulk_create ({db})",
        "plain-reader": f"plain: csv.reader + bulk_create ({db})",
    }

    def line(label: str, wall: float, cpu: float, note: str = "") -> None:
        print(f"  {label:<50} {wall:7.1f} s wall {cpu:7.1f} s CPU   {note}")

    for key, title in (("nppes", "NPPES"), ("pairs", "Shared patients")):
        if key == "nppes":
            size = f"{meta['nppes_bytes'] / 1e9:.2f} GB, {meta['nppes_rows']:,} rows x 330 columns"
            kept = f"kept within {RADIUS} miles of 3 Columbus sites"
            ours_label, again = (
                f"ours: liaison import nppes ({db})",
                "ours: the same file again (monthly refresh)",
            )
        else:
            size = f"{meta['pairs']:,} pairs, {meta['pairs_bytes'] / 1e9:.2f} GB"
            kept = "kept (touching ours or a provider near our sites)"
            ours_label, again = f"ours: liaison import shared-patients ({db})", "ours: the same file again"
        print(f"{title}: {size}; {kept}: {ours[key + '_kept']:,} (floor {floor[key + '_kept']:,})")
        f_wall, f_cpu = floor[key + "_seconds"], floor[key + "_cpu"]
        line("floor: Polars scan, same columns and filter", f_wall, f_cpu)
        runs = [(key, ours_label), (key + "_refresh", again)]
        if key == "nppes":
            runs.append(("nppes_careful", "ours: monthly refresh, DuckDB the only reader"))
        for k, label in runs:
            wall, cpu = ours[k + "_seconds"], ours[k + "_cpu"]
            line(label, wall, cpu, f"/ floor: {wall / f_wall:.1f}x wall, {cpu / f_cpu:.1f}x CPU")
        parts = {
            "ours-read": "ours, first import: reading only",
            "ours-parse": "ours, first import: reading and parsing rows",
        }
        for path, label in parts.items():
            if f"{key}_seconds" not in results.get(path, {}):
                continue
            wall, cpu = results[path][key + "_seconds"], results[path][key + "_cpu"]
            line(label, wall, cpu, f"/ floor: {wall / f_wall:.1f}x wall, {cpu / f_cpu:.1f}x CPU")
        for path, label in plain_labels.items():
            if path in results:
                wall, cpu = results[path][key + "_seconds"], results[path][key + "_cpu"]
                o_wall, o_cpu = ours[key + "_seconds"], ours[key + "_cpu"]
                line(label, wall, cpu, f"/ ours: {wall / o_wall:.1f}x wall, {cpu / o_cpu:.1f}x CPU")
    rss = ", ".join(f"{k} {v['peak_rss_mb']:,.0f} MB" for k, v in results.items())
    print(f"Peak RSS per process: {rss}")
    print(f"(machine: {os.cpu_count()} cores, load average {load:.1f} at the start; files in {data})")


if __name__ == "__main__":
    main()
