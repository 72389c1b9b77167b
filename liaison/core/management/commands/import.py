"""`liaison import KIND FILE`: one entry point for every file import.

Each kind lives in its domain package and provides `add_arguments(parser)` and
`handle(options, stdout) -> None` (raising CommandError with a clear message on bad input).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

IMPORTERS = {
    "taxonomy": "liaison.directory.management.importers.taxonomy",
    "nppes": "liaison.marketdata.management.importers.nppes",
    "shared-patients": "liaison.marketdata.management.importers.shared_patients",
    "utilization": "liaison.marketdata.management.importers.utilization",
    "hl7": "liaison.interop.management.importers.hl7",
    "referrals": "liaison.interop.management.importers.referrals",
}


class Command(BaseCommand):
    help = "Import a file: " + ", ".join(sorted(IMPORTERS)) + ". `liaison import KIND --help` for each."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(
            dest="kind", required=True, metavar="{" + ",".join(sorted(IMPORTERS)) + "}"
        )
        self._modules = {}
        for kind, path in sorted(IMPORTERS.items()):
            module = import_module(path)
            self._modules[kind] = module
            kind_parser = sub.add_parser(kind, help=module.HELP, description=module.HELP)
            module.add_arguments(kind_parser)

    def handle(self, *args: Any, **options: Any) -> None:
        self._modules[options["kind"]].handle(options, self.stdout)
