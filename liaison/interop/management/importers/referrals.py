"""`liaison import referrals FILE --mapping NAME`: a practice-management export (CSV or XLSX)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from liaison.core.jobs import ConsoleProgress, Progress

HELP = (
    "Referrals from a practice-management export (CSV or XLSX) with a saved column mapping "
    "(made on the Import referrals page). All or nothing; re-importing adds nothing twice."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="the CSV or XLSX export")
    parser.add_argument("--mapping", required=True, help="name of a saved column mapping")
    parser.add_argument(
        "--skip-bad-rows", action="store_true", help="import the good rows, skip the bad ones"
    )
    parser.add_argument("--dry-run", action="store_true", help="check every row, write nothing")


def handle(options: dict[str, Any], stdout: Any) -> None:
    from liaison.interop import bulk, services, tabular
    from liaison.interop.models import ColumnMapping

    path: Path = options["file"]
    if not path.is_file():
        raise CommandError(f"{path}: no such file")
    mapping = ColumnMapping.objects.filter(name__iexact=options["mapping"]).first()
    if mapping is None:
        names = ", ".join(ColumnMapping.objects.values_list("name", flat=True)) or "none yet"
        raise CommandError(f"no saved mapping named {options['mapping']!r} (saved: {names})")
    content = path.read_bytes()
    try:
        kind = tabular.detect_kind(path.name, content)
        headers, _ = tabular.read_table(content, kind)
        missing = tabular.check_columns(mapping.columns, headers)
        if missing:
            problems = "; ".join(
                f"{tabular.TARGET_LABELS.get(k, k)}: {' '.join(v)}" for k, v in missing.items()
            )
            raise CommandError(
                f"{path.name}: the mapping {mapping.name!r} does not fit this file: {problems}"
            )
        total = tabular.count_rows(content, kind)
        progress = ConsoleProgress("referral rows") if sys.stderr.isatty() else Progress()
        result = bulk.import_table(
            content,
            kind,
            services.mapping_spec(mapping),
            actor="liaison import referrals",
            skip_bad_rows=options["skip_bad_rows"],
            dry_run=options["dry_run"],
            progress=progress,
            label=f"liaison import referrals ({mapping.name})",
            total=total,
        )
        progress.finish()
    except tabular.FileError as exc:
        raise CommandError(f"{path.name}: nothing imported: {exc}") from None
    for number, message in result.errors[:50]:
        stdout.write(f"  row {number}: {message}")
    if len(result.errors) > 50:
        stdout.write(f"  ... and {len(result.errors) - 50} more")
    counts = ", ".join(f"{v} {k}" for k, v in result.summary().items())
    if result.error_rows and not options["skip_bad_rows"]:
        raise CommandError(f"{path.name}: nothing imported ({counts}); fix the rows or use --skip-bad-rows")
    verb = "checked (dry run)" if options["dry_run"] else "done"
    stdout.write(f"{path.name}: {verb}: {counts}")
