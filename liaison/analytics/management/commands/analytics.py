from __future__ import annotations

import argparse
import csv
import io
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from liaison.analytics import cooling

COOLING_HEADER = ["referrer_id", "alert_date", "baseline_per_month", "recent_count", "p_value", "explanation"]


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)")


def read_referrals_csv(path: str) -> dict[str, list[date]]:
    """`referrer_id,date` rows (header first) -> dates by referrer. Any bad row stops the whole read
    with its line number, so nothing is reported from a half-read file."""
    history: dict[str, list[date]] = defaultdict(list)
    try:
        with Path(path).open(newline="", encoding="utf-8-sig") as handle:
            _read_rows(csv.reader(handle, strict=True), path, history)
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}")
    return dict(history)


def _read_rows(reader: Any, path: str, history: dict[str, list[date]]) -> None:
    try:
        header = [h.strip().lower() for h in next(reader, [])]
    except (csv.Error, UnicodeDecodeError) as exc:
        raise CommandError(f"{path}, line 1: not a readable CSV file ({exc})")
    if "referrer_id" not in header or "date" not in header:
        raise CommandError(
            f"{path}, line 1: the header must name the columns referrer_id and date (found {','.join(header)!r})"
        )
    col_id, col_date, width = header.index("referrer_id"), header.index("date"), len(header)
    line = 1
    try:
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != width:
                raise CommandError(f"{path}, line {line}: expected {width} columns, found {len(row)}")
            referrer, text = row[col_id].strip(), row[col_date].strip()
            if not referrer:
                raise CommandError(f"{path}, line {line}: empty referrer_id")
            try:
                history[referrer].append(date.fromisoformat(text))
            except ValueError:
                raise CommandError(f"{path}, line {line}: date {text!r} is not a date (YYYY-MM-DD)")
    except (csv.Error, UnicodeDecodeError) as exc:
        raise CommandError(f"{path}, line {line + 1}: unreadable row ({exc})")


class Command(BaseCommand):
    help = (
        "Analytics tools. `liaison analytics refresh` recomputes the dashboards and the cooling alerts; "
        "`liaison analytics cooling --from-csv FILE [--as-of YYYY-MM-DD]` lists the referrers cooling off "
        "in any referral history as CSV; `liaison analytics digest` sends the weekly digest emails now."
    )

    # sub-command -> method; each method takes the parsed options
    actions = {"cooling": "handle_cooling", "refresh": "handle_refresh", "digest": "handle_digest"}

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="{refresh,cooling,digest}")
        r = sub.add_parser(
            "refresh",
            help="recompute the dashboards' figures, run the cooling detector, open and clear alerts",
            description=(
                "What the worker does every hour: rebuilds the rollups from the referral and outreach "
                "history, opens an alert (account at risk, a task for its owner) for each referrer newly "
                "cooling off and clears those that recovered. Safe to run again."
            ),
        )
        r.add_argument(
            "--as-of", dest="as_of", type=_iso_date, default=None, metavar="YYYY-MM-DD", help="default: today"
        )
        d = sub.add_parser(
            "digest", help="send the weekly digest emails now (the worker sends them on Mondays)"
        )
        d.add_argument("--dry-run", action="store_true", help="print the emails instead of sending them")
        p = sub.add_parser(
            "cooling",
            help="referrers whose recent volume is improbably low under their own baseline, as CSV",
            description=(
                "Reads referrer_id,date rows (one per referral) and prints one CSV row per referrer in "
                "alert on the --as-of date. Stateless: a referrer is listed when its verdict that day is "
                "`cooling` (the stored alerts of the app also need `recovered` to clear)."
            ),
        )
        p.add_argument("--from-csv", dest="from_csv", required=True, metavar="FILE")
        p.add_argument(
            "--as-of", dest="as_of", type=_iso_date, default=None, metavar="YYYY-MM-DD", help="default: today"
        )

    def handle(self, *args: object, **options: Any) -> None:
        action = options["action"]
        getattr(self, self.actions[action])(**options)

    def handle_refresh(self, *, as_of: date | None, **_: Any) -> None:
        import sys

        from liaison.analytics.refresh import refresh
        from liaison.core.jobs import ConsoleProgress, Progress

        progress = ConsoleProgress("refreshing analytics") if sys.stderr.isatty() else Progress()
        run = refresh(as_of=as_of, progress=progress, actor="liaison analytics refresh")
        self.stdout.write(
            f"analytics as of {run.as_of}: {run.referrals:,} referrals from {run.referrers:,} referrers; "
            f"{run.alerts_opened} cooling alerts opened, {run.alerts_cleared} cleared ({run.seconds:.1f} s)"
        )

    def handle_digest(self, *, dry_run: bool, **_: Any) -> None:
        from liaison.accounts.models import User
        from liaison.analytics.tasks import digest_for

        sent = 0
        for user in User.objects.filter(is_active=True).exclude(email="").order_by("email"):
            message = digest_for(user)
            if message is None:
                continue
            if dry_run:
                self.stdout.write(f"To: {user.email}\nSubject: {message.subject}\n\n{message.body}\n")
            else:
                message.send()
            sent += 1
        self.stdout.write(f"{sent} digest{'s' if sent != 1 else ''} {'printed' if dry_run else 'sent'}")

    def handle_cooling(self, *, from_csv: str, as_of: date | None, **_: Any) -> None:
        as_of = as_of or timezone.localdate()
        history = read_referrals_csv(from_csv)
        verdicts = [v for v in cooling.detect_many(history, as_of) if v.cooling]
        verdicts.sort(key=lambda v: (v.p_value, v.referrer_id))
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COOLING_HEADER)
        for v in verdicts:
            writer.writerow(
                [
                    v.referrer_id,
                    as_of.isoformat(),
                    f"{v.baseline_per_month:.2f}",
                    v.recent_count,
                    f"{v.p_value:.3g}",
                    v.explanation,
                ]
            )
        self.stdout.write(out.getvalue(), ending="")
