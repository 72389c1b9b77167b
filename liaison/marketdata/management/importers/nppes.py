from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import CommandError

from liaison.directory.models import Location
from liaison.directory.selectors import our_sites
from liaison.marketdata import reports
from liaison.marketdata.management.importers.common import add_common_arguments, run
from liaison.marketdata.models import ImportKind
from liaison.marketdata.nppes import importer_for

HELP = (
    "NPPES: the monthly full file, a weekly update (CSV or the zip as downloaded, V1 or V2 header) or the "
    "deactivation report. Filter with --states, --near-site/--radius, --taxonomy, --entity; NPIs already in "
    "the directory are always updated. Ends with the directory changes."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--states", default="", help="practice-location states, comma-separated: OH,KY,IN")
    parser.add_argument(
        "--near-site",
        action="append",
        default=[],
        metavar="SITE",
        help="one of our sites (name or id; repeatable); with --radius. Default with --radius: all our sites",
    )
    parser.add_argument(
        "--radius", type=float, metavar="MILES", help="practice location within MILES of the sites"
    )
    parser.add_argument(
        "--taxonomy",
        default="",
        help="comma-separated NUCC codes (207X00000X), prefixes (207X) or specialty names (orthopaedic)",
    )
    parser.add_argument("--entity", choices=["individual", "organisation", "organization"], default="")


def resolve_sites(names: list[str], radius: float | None) -> list[Location]:
    sites = list(our_sites())
    if radius is None:
        if names:
            raise CommandError("--near-site needs --radius MILES")
        return []
    if not sites:
        raise CommandError("--radius: we have no site yet (add our practice and its locations first)")
    if not names or any(n.lower() == "all" for n in names):
        return sites
    chosen = []
    for name in names:
        match = [
            s
            for s in sites
            if str(s.pk) == name or s.name.lower() == name.lower() or s.city.lower() == name.lower()
        ]
        if not match:
            known = ", ".join(s.name or s.city for s in sites)
            raise CommandError(f"--near-site {name}: not one of our sites ({known})")
        chosen += match
    return chosen


def handle(options: dict[str, Any], stdout: Any) -> None:
    sites = resolve_sites(options["near_site"], options["radius"])
    importer = run(
        importer_for(options["file"]),
        options,
        stdout,
        "import nppes",
        states=[s for s in options["states"].split(",") if s.strip()],
        near_sites=sites,
        radius_miles=options["radius"],
        taxonomy=[t for t in options["taxonomy"].split(",") if t.strip()],
        entity=options["entity"],
    )
    if not importer.already_done and importer.run.kind in (ImportKind.NPPES, ImportKind.DEACTIVATIONS):
        for line in reports.change_lines(importer.run):
            stdout.write(line)
