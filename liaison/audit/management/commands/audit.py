from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError, CommandParser

from liaison.audit.services import verify_chain
from liaison.core.jobs import ConsoleProgress, Progress


class Command(BaseCommand):
    help = "Audit trail tools. `liaison audit verify` checks the hash chain and names the first bad row."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="{verify}")
        sub.add_parser("verify", help="check every audit row against the hash chain")

    def handle(self, *args: object, **options: object) -> None:
        progress = ConsoleProgress("verifying audit chain") if sys.stderr.isatty() else Progress()
        result = verify_chain(progress)
        if not result.ok:
            raise CommandError(f"audit chain BROKEN after {result.checked} good rows: {result.problem}")
        self.stdout.write(f"audit chain OK: {result.checked} rows verified")
