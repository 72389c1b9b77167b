"""What the three market-data importers share on the command line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from liaison.core.jobs import ConsoleProgress, Progress
from liaison.marketdata import reports
from liaison.marketdata.runs import FileImport
from liaison.marketdata.scan import ImportFileError


def add_common_arguments(parser: Any) -> None:
    parser.add_argument("file", type=Path, help="the file as downloaded (CSV, or the zip CMS publishes)")
    parser.add_argument(
        "--force", action="store_true", help="read the file again even if this import already finished"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="kept rows written per transaction (default: 2000 for NPPES, more for smaller rows)",
    )


def run(
    importer_class: type[FileImport] | Callable[..., FileImport],
    options: dict[str, Any],
    stdout: Any,
    command: str,
    **kwargs: Any,
) -> FileImport:
    path: Path = options["file"]
    progress = ConsoleProgress(command) if sys.stderr.isatty() else Progress()
    try:
        importer = importer_class(
            path,
            actor=f"liaison {command}",
            progress=progress,
            force=options["force"],
            batch_size=max(1, options["batch_size"]) if options["batch_size"] else None,
            **kwargs,
        )
        importer.execute()
    except ImportFileError as exc:
        raise CommandError(f"{exc}") from exc
    except KeyboardInterrupt:
        raise CommandError(f"{path.name}: interrupted; run the same command again to resume where it stopped")
    for line in reports.run_lines(importer.run, already=importer.already_done):
        stdout.write(line)
    return importer
