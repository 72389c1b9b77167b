from __future__ import annotations

import random
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils import timezone

from liaison.accounts.demo import DEMO_PASSWORD, DEMO_USERS
from liaison.core.demo import DemoContext, steps
from liaison.directory.models import Practice


class Command(BaseCommand):
    help = (
        "Load the synthetic demo: an orthopaedic group with 3 sites and 8 physicians in Columbus, Ohio, "
        "about 120 referring practices with 300 providers and their staff, and one user per role. "
        "Deterministic for a seed. Does nothing if the demo is already loaded."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=2026)
        parser.add_argument(
            "--scale", type=float, default=1.0, help="multiply the number of referring practices"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if Practice.objects.ours().exists():
            self.stdout.write("Demo data is already loaded (our organisation exists).")
        else:
            ctx = DemoContext(
                rng=random.Random(options["seed"]), today=timezone.localdate(), scale=options["scale"]
            )
            with transaction.atomic():
                for step in steps():
                    self.stdout.write(step(ctx))
        self.stdout.write("\nSign in at http://127.0.0.1:8000/ with one of these demo accounts:")
        for email, _, role in DEMO_USERS:
            self.stdout.write(f"  {role:<12} {email}")
        self.stdout.write(f"  password for all: {DEMO_PASSWORD}\n")
