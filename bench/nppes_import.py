"""Benchmark: `liaison import nppes` and `liaison import shared-patients` on full-size files.

    .venv/bin/python bench/nppes_import.py                              # 1 GB NPPES file, 20M pairs
    .venv/bin/python bench/nppes_import.py --size 100MB --pairs 2000000 # a quick run

It generates, in a scratch folder, an NPPES-shaped file (330 columns, every value quoted, most of
the licence and identifier columns empty, ~1.2 KB a row like the real one, 0.6% of the providers
practising around Columbus) and a CMS-format shared-patient file. Then, each in its own process
(so that its peak memory is its own), on the same files with the same filter ("within 25 miles of
our three Columbus sites", and for the pairs "touching a provider near our sites or one of ours"):

- ours:  `liaison import nppes FILE --radius 25`, then `liaison import shared-patients FILE`, end to
         end (DuckDB scan, checks, directory writes, changes report, scoring) into a fresh database;
- floor: a Polars scan of the same columns with the same filter, collected in memory (no database):
         what reading the file costs at least;
- plain: Python's csv module over every row, the same filter in Python, Django bulk_create of the
         kept rows (a practice, an office and a provider per individual) into a fresh database.

Prints the times, ours / floor, plain / ours and each process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CENTRE = (39.9612, -82.9988)  # Columbus
SITES = [("Downtown", "43215", "Columbus"), ("North", "43081", "Westerville"), ("Dublin", "43017", "Dublin")]
RADIUS = 25


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="1GB", help="NPPES file size, e.g. 1GB, 200MB (default 1GB)")
    p.add_argument("--pairs", type=int, default=20_000_000, help="shared-patient pairs (default 20M)")
    p.add_argument("--data", type=Path, help="keep the generated files here (and reuse them next time)")
    p.add_argument("--database-url", default="", help="default: a scratch SQLite file per process")
    p.add_argument("--skip-plain", action="store_true", help="skip the slow plain path")
    p.add_argument("--child", choices=["ours", "floor", "plain"], help=argparse.SUPPRESS)
    return p.parse_args()


def size_bytes(text: str) -> int:
    m = re.fullmatch(r"(?i)\s*(\d+(?:\.\d+)?)\s*(gb|mb|kb|b)?\s*", text)
    if not m:
        raise SystemExit(f"--size {text}: give e.g. 1GB or 200MB")
    return int(
        float(m.group(1))
        * {"gb": 1 << 30, "mb": 1 << 20, "kb": 1 << 10, "b": 1, None: 1}[(m.group(2) or "b").lower()]
    )


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


def run_ours(meta: dict) -> dict:
    import io

    from django.core.management import call_command

    from liaison.marketdata.models import ImportRun

    our_directory(meta)
    t = time.perf_counter()
    call_command("import", "nppes", meta["nppes"], "--radius", str(RADIUS), stdout=io.StringIO())
    nppes_seconds = time.perf_counter() - t
    nppes_run = ImportRun.objects.get(kind="nppes")
    t = time.perf_counter()
    call_command("import", "shared-patients", meta["pairs_path"], stdout=io.StringIO())
    pairs_seconds = time.perf_counter() - t
    pairs_run = ImportRun.objects.get(kind="shared-patients")
    return {
        "nppes_seconds": nppes_seconds,
        "nppes_kept": nppes_run.rows_kept,
        "nppes_read": nppes_run.rows_read,
        "pairs_seconds": pairs_seconds,
        "pairs_kept": pairs_run.rows_kept,
        "pairs_read": pairs_run.rows_read,
    }


def _near_zips(sites: list) -> list[str]:
    from liaison.marketdata.nppes import zips_near

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
    t = time.perf_counter()
    kept = (
        pl.scan_csv(meta["nppes"], infer_schema=False)
        .select(columns)
        .filter(pl.col(zip_column).str.slice(0, 5).is_in(zips) | pl.col("NPI").is_in(meta["ours"]))
        .collect()
    )
    nppes_seconds = time.perf_counter() - t
    interesting = set(kept.filter(pl.col("Entity Type Code") == "1")["NPI"].to_list()) | set(meta["ours"])
    t = time.perf_counter()
    pairs = (
        pl.scan_csv(
            meta["pairs_path"],
            has_header=False,
            new_columns=["npi1", "npi2", "pair_count", "bene_count", "same_day_count"],
            schema_overrides={"npi1": pl.String, "npi2": pl.String},
        )
        .filter(pl.col("npi1").is_in(interesting) | pl.col("npi2").is_in(interesting))
        .collect()
    )
    pairs_seconds = time.perf_counter() - t
    return {
        "nppes_seconds": nppes_seconds,
        "nppes_kept": kept.height,
        "pairs_seconds": pairs_seconds,
        "pairs_kept": pairs.height,
    }


def run_plain(meta: dict) -> dict:
    import csv

    from liaison.core.geo import normalize_zip
    from liaison.directory.models import Location, Practice, Provider
    from liaison.marketdata.models import SharedPatientDataset, SharedPatientPair
    from liaison.marketdata.nppes_columns import WANTED

    sites = our_directory(meta)
    zips = set(_near_zips(sites))
    ours = set(meta["ours"])
    t = time.perf_counter()
    kept = 0
    batch: list[list[str]] = []

    def flush(rows: list[list[str]]) -> None:
        practices, locations, providers = [], [], []
        for r in rows:
            practice = Practice(
                name=r[idx["org"]] or f"Practice at {r[idx['line1']]}",
                organization_npi=r[0] if r[1] == "2" else "",
                source="nppes",
            )
            practices.append(practice)
            loc = Location(
                practice=practice,
                address_line1=r[idx["line1"]],
                city=r[idx["city"]],
                state=r[idx["state"]],
                zip_code=normalize_zip(r[idx["zip"]]) or r[idx["zip"]][:5],
                source="nppes",
            )
            loc.clean()
            locations.append(loc)
            if r[1] == "1":
                providers.append(
                    (
                        Provider(
                            npi=r[0],
                            first_name=r[idx["first"]],
                            last_name=r[idx["last"]],
                            credential=r[idx["credential"]],
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

    with open(meta["nppes"], newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        idx = {
            "org": header.index(WANTED["org_name"]),
            "last": header.index(WANTED["last_name"]),
            "first": header.index(WANTED["first_name"]),
            "credential": header.index(WANTED["credential"]),
            "line1": header.index(WANTED["address_line1"]),
            "city": header.index(WANTED["city"]),
            "state": header.index(WANTED["state"]),
            "zip": header.index(WANTED["zip_code"]),
        }
        for row in reader:
            if row[idx["zip"]][:5] in zips or row[0] in ours:
                if not row[1]:
                    continue
                batch.append(row)
                kept += 1
                if len(batch) >= 2000:
                    flush(batch)
                    batch = []
        if batch:
            flush(batch)
    nppes_seconds = time.perf_counter() - t
    interesting = set(Provider.objects.exclude(npi="").values_list("npi", flat=True))
    dataset = SharedPatientDataset.objects.create(key="plain", source="cms", year=2015, window_days=30)
    t = time.perf_counter()
    pairs_kept = 0
    pending: list[SharedPatientPair] = []
    with open(meta["pairs_path"], newline="") as f:
        for a, b, pair_count, bene_count, same_day in csv.reader(f):
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
    pairs_seconds = time.perf_counter() - t
    return {
        "nppes_seconds": nppes_seconds,
        "nppes_kept": kept,
        "pairs_seconds": pairs_seconds,
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
        result = (run_ours if args.child == "ours" else run_plain)(meta)
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
    for path in ["floor", "ours"] + ([] if args.skip_plain else ["plain"]):
        print(f"running {path} ...", flush=True)
        results[path] = spawn(path, args, data)
    ours, floor = results["ours"], results["floor"]
    plain = results.get("plain")
    db = "PostgreSQL" if args.database_url.startswith("postgres") else "SQLite"
    print()
    print(
        f"NPPES: {meta['nppes_bytes'] / 1e9:.2f} GB, {meta['nppes_rows']:,} rows x 330 columns; kept within {RADIUS} miles of 3 Columbus sites: {ours['nppes_kept']:,} (floor {floor['nppes_kept']:,})"
    )
    print(f"  ours   liaison import nppes, end to end ({db})   {ours['nppes_seconds']:7.1f} s")
    print(
        f"  floor  Polars scan, same columns and filter      {floor['nppes_seconds']:7.1f} s   ours / floor = {ours['nppes_seconds'] / floor['nppes_seconds']:.2f}"
    )
    if plain:
        print(
            f"  plain  csv module + bulk_create ({db})         {plain['nppes_seconds']:7.1f} s   plain / ours = {plain['nppes_seconds'] / ours['nppes_seconds']:.1f}"
        )
    print(
        f"Shared patients: {meta['pairs']:,} pairs, {meta['pairs_bytes'] / 1e9:.2f} GB; kept (touching ours or near our sites): {ours['pairs_kept']:,} (floor {floor['pairs_kept']:,})"
    )
    print(f"  ours   liaison import shared-patients ({db})    {ours['pairs_seconds']:7.1f} s")
    print(
        f"  floor  Polars scan, same filter                  {floor['pairs_seconds']:7.1f} s   ours / floor = {ours['pairs_seconds'] / floor['pairs_seconds']:.2f}"
    )
    if plain:
        print(
            f"  plain  csv module + bulk_create ({db})         {plain['pairs_seconds']:7.1f} s   plain / ours = {plain['pairs_seconds'] / ours['pairs_seconds']:.1f}"
        )
    rss = ", ".join(f"{k} {v['peak_rss_mb']:,.0f} MB" for k, v in results.items())
    print(f"Peak RSS per process: {rss}")
    print(f"(machine: {os.cpu_count()} cores, load average {load:.1f} at the start; files in {data})")


if __name__ == "__main__":
    main()
