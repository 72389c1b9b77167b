from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from liaison.core.assets import ASSETS, AssetError, ensure_assets


class Command(BaseCommand):
    requires_system_checks: list[str] = []  # it is what fixes the missing-assets check
    help = (
        "Fetch the front-end assets (htmx, Pico CSS, Chart.js, Leaflet) from the npm registry, "
        "verified by their sha512 integrity, into liaison/static/vendor/."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--force", action="store_true", help="fetch again even if present")
        parser.add_argument("--list", action="store_true", help="list the pinned packages and exit")

    def handle(self, *args: object, **options: object) -> None:
        if options["list"]:
            for a in ASSETS:
                self.stdout.write(f"{a.package}@{a.version}  {a.integrity}")
            return
        try:
            fetched = ensure_assets(force=bool(options["force"]))
        except (AssetError, OSError) as exc:
            raise CommandError(f"could not fetch front-end assets: {exc}") from exc
        self.stdout.write("fetched " + ", ".join(fetched) if fetched else "front-end assets are up to date")
