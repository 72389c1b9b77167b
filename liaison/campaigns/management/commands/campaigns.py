from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from liaison.campaigns import bounces, services


class Command(BaseCommand):
    requires_system_checks = []  # run from cron and right after a crash: start fast
    help = (
        "Campaign tools. `liaison campaigns bounces FILE...` reads bounce reports (DSN) and spam "
        "complaints (ARF) from .eml files, mbox files, maildirs or stdin (-) and flags the addresses; "
        "`liaison campaigns resume` restarts the sends whose worker stopped (the worker also does it "
        "every two minutes)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="{bounces,resume}")
        b = sub.add_parser("bounces", help="flag the addresses of bounce reports and spam complaints")
        b.add_argument(
            "paths", nargs="+", help=".eml or mbox files, maildir or plain directories, or - for stdin"
        )
        r = sub.add_parser("resume", help="restart the sends whose sender stopped")
        r.add_argument(
            "--wait",
            action="store_true",
            help="wait for the stopped sender's lease to run out (after a crash)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "resume":
            resumed = services.resume_sends(wait=options["wait"])
            self.stdout.write(
                f"resumed campaign(s) {', '.join(map(str, resumed))}" if resumed else "nothing to resume"
            )
            return
        stdin = sys.stdin.buffer.read() if "-" in options["paths"] else None
        messages = flagged = complaints = matched = 0
        for raw in bounces.read_messages(options["paths"], stdin):
            messages += 1
            for report in bounces.parse(raw):
                recipient = services.record_bounce(
                    report.email,
                    actor="bounce processing",
                    message_id=report.message_id,
                    detail=report.detail,
                    complaint=report.complaint,
                )
                flagged += 1
                complaints += report.complaint
                matched += recipient is not None
        self.stdout.write(
            f"{messages} message(s) read: {flagged} address(es) flagged "
            f"({complaints} complaint(s)), {matched} matched to a campaign recipient"
        )
