from __future__ import annotations

import argparse
from typing import Any

from liaison.marketdata.management.importers.common import add_common_arguments, run
from liaison.marketdata.shared_patients import WINDOWS, SharedPatientsImport

HELP = (
    "Shared patients: CMS Physician Shared Patient Patterns (npi1,npi2,pair_count,bene_count,same_day_count, "
    "no header) or CareSet Hop Teaming (from_npi,to_npi,...), detected from the file. Keeps the pairs that "
    "touch our physicians or providers near our sites; then rescores the opportunities."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument(
        "--window",
        type=int,
        choices=WINDOWS,
        help="CMS day window (else read from the file name: ...-days30.txt)",
    )
    parser.add_argument("--year", type=int, help="data year (else read from the file name)")


def handle(options: dict[str, Any], stdout: Any) -> None:
    run(
        SharedPatientsImport,
        options,
        stdout,
        "import shared-patients",
        window=options["window"],
        year=options["year"],
    )
