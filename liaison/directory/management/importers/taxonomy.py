from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from liaison.core.jobs import ConsoleProgress, Progress
from liaison.directory import taxonomy

HELP = "NUCC Health Care Provider Taxonomy CSV (current or older header); --download fetches the current one."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", type=Path, help="the NUCC CSV (e.g. nucc_taxonomy_251.csv)")
    parser.add_argument(
        "--download", action="store_true", help="download the current CSV from nucc.org first"
    )


def handle(options: dict[str, Any], stdout: Any) -> None:
    path: Path | None = options["file"]
    if options["download"]:
        try:
            path = taxonomy.download_current(Path(tempfile.mkdtemp()))
        except taxonomy.TaxonomyFileError as exc:
            raise CommandError(str(exc)) from exc
        stdout.write(f"downloaded {path.name}")
    if path is None:
        raise CommandError("give the CSV file, or --download")
    if not path.is_file():
        raise CommandError(f"{path}: no such file")
    progress = ConsoleProgress("taxonomy codes") if sys.stderr.isatty() else Progress()
    try:
        result = taxonomy.import_file(path, actor="liaison import taxonomy", progress=progress)
    except taxonomy.TaxonomyFileError as exc:
        raise CommandError(f"{path.name}: nothing imported:\n{exc}") from exc
    stdout.write(f"{path.name}: {result.summary()}")
