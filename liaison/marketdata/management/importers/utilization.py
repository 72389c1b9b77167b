from __future__ import annotations

import argparse
from typing import Any

from liaison.marketdata.management.importers.common import add_common_arguments, run
from liaison.marketdata.utilization import UtilizationImport

HELP = (
    "Medicare Physician & Other Practitioners, by provider and service (Rndrng_NPI, HCPCS_Cd, Tot_Benes, "
    "Tot_Srvcs...) or by provider (Bene_Dual_Cnt...), for the providers in the directory."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--year", type=int, help="data year (else read from the file name, e.g. ..._D22_...)")


def handle(options: dict[str, Any], stdout: Any) -> None:
    run(UtilizationImport, options, stdout, "import utilization", year=options["year"])
