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
    try:
        handle = Path(path).open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}")
    history: dict[str, list[date]] = defaultdict(list)
    with handle:
        reader = csv.reader(handle, strict=True)
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
    return dict(history)


class Command(BaseCommand):
    help = (
        "Analytics tools. `liaison analytics cooling --from-csv FILE [--as-of YYYY-MM-DD]` lists the "
        "referrers cooling off as CSV."
    )

    # sub-command -> method; each method takes the parsed options
    actions = {"cooling": "handle_cooling"}

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="{cooling}")
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
