"""`liaison marketdata changes|score|imports`: the market data reports on the command line."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from liaison.marketdata import reports, selectors
from liaison.marketdata.models import ImportRun
from liaison.marketdata.scoring import rescore


class Command(BaseCommand):
    help = (
        "Market data: `changes` prints the directory changes of the latest NPPES import (or --run ID), "
        "`score` recomputes the opportunity scores, `imports` lists the imports."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="{changes,score,imports}")
        changes = sub.add_parser("changes", help="directory changes of an NPPES import")
        changes.add_argument("--run", type=int, help="import number (default: the latest NPPES import)")
        sub.add_parser("score", help="recompute the opportunity scores")
        imports = sub.add_parser("imports", help="the latest imports and their summaries")
        imports.add_argument("--limit", type=int, default=20)

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "changes":
            run = None
            if options["run"]:
                run = selectors.nppes_runs().filter(pk=options["run"]).first()
                if run is None:
                    raise CommandError(f"no NPPES import #{options['run']}")
            else:
                run = selectors.directory_changes().run
                if run is None:
                    raise CommandError("no NPPES import has finished yet")
            for line in reports.change_lines(run):
                self.stdout.write(line)
        elif action == "score":
            self.stdout.write(str(rescore(actor="liaison marketdata score")))
        else:
            for run in ImportRun.objects.order_by("-started_at", "-pk")[: options["limit"]]:
                self.stdout.write(
                    f"#{run.pk} {run.started_at:%Y-%m-%d %H:%M} {run.get_kind_display()}: {run.status_label}"
                )
                for line in reports.run_lines(run):
                    self.stdout.write("  " + line)
