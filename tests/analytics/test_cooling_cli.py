"""`liaison analytics cooling --from-csv FILE --as-of DATE`: alerts as CSV, clear errors (no database)."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from liaison.analytics.management.commands.analytics import COOLING_HEADER

AS_OF = date(2025, 6, 30)


def write_history(path, as_of: date = AS_OF) -> None:
    """Five steady referrers at 4-12 a month for three years; "DROP" stops 70 days before as_of."""
    rng = np.random.default_rng(5)
    rows = []
    for rid, per_month in [("A", 4), ("B", 6), ("C", 8), ("D", 10), ("DROP", 9), ("E", 12)]:
        for i in range(3 * 365):
            day = as_of - timedelta(days=i)
            if rid == "DROP" and i < 70:
                continue
            rows += [(rid, day.isoformat())] * rng.poisson(per_month * 12 / 365.25)
    rows.sort(key=lambda r: r[1])
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["referrer_id", "date"])
        w.writerows(rows)


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("analytics", "cooling", *args, stdout=out)
    return out.getvalue()


def test_it_prints_one_csv_row_per_referrer_in_alert(tmp_path):
    path = tmp_path / "referrals.csv"
    write_history(path)
    rows = list(csv.reader(io.StringIO(run("--from-csv", str(path), "--as-of", AS_OF.isoformat()))))
    header = ["referrer_id", "alert_date", "baseline_per_month", "recent_count", "p_value", "explanation"]
    assert rows[0] == COOLING_HEADER == header
    assert [r[0] for r in rows[1:]] == ["DROP"]
    _, alert_date, per_month, recent, p_value, explanation = rows[1]
    assert alert_date == "2025-06-30"
    assert 7 < float(per_month) < 11 and int(recent) <= 3 and float(p_value) < 0.001
    assert explanation.startswith(
        f"DROP averaged {float(per_month):.1f} referrals/month over 24 months; {recent} in the last"
    )
    assert "probability under the baseline" in explanation


def test_nothing_is_in_alert_before_the_drop(tmp_path):
    path = tmp_path / "referrals.csv"
    write_history(path)
    out = run("--from-csv", str(path), "--as-of", (AS_OF - timedelta(days=80)).isoformat())
    assert out == ",".join(COOLING_HEADER) + "\n"


def test_as_of_defaults_to_today(tmp_path):
    path = tmp_path / "referrals.csv"
    write_history(path, as_of=timezone.localdate())
    rows = list(csv.reader(io.StringIO(run("--from-csv", str(path)))))
    assert [r[0] for r in rows[1:]] == ["DROP"] and rows[1][1] == timezone.localdate().isoformat()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("referrer_id,date\nA,2025-01-02\nB,2025-02-30\n", "line 3: date '2025-02-30' is not a date"),
        ("referrer_id,date\nA,2025-01-02\n,2025-01-03\n", "line 3: empty referrer_id"),
        ("referrer_id,date\nA,2025-01-02\n\nA,2025-01-03,x\n", "line 4: expected 2 columns, found 3"),
        ("referrer,day\nA,2025-01-02\n", "line 1: the header must name the columns referrer_id and date"),
        ("", "line 1: the header must name the columns referrer_id and date"),
        ('referrer_id,date\nA,"2025-01-02\n', "line 2"),
    ],
)
def test_a_malformed_file_names_the_line_and_prints_nothing(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    out = io.StringIO()
    with pytest.raises(CommandError, match=message.replace("(", r"\(")) as raised:
        call_command("analytics", "cooling", "--from-csv", str(path), "--as-of", "2025-06-30", stdout=out)
    assert str(path) in str(raised.value)
    assert out.getvalue() == ""


def test_columns_may_come_in_any_order_with_a_bom_and_extra_columns(tmp_path):
    path = tmp_path / "referrals.csv"
    write_history(path)
    lines = path.read_text().splitlines()
    swapped = ["date,site,referrer_id"] + [f"{d},x,{r}" for r, d in (line.split(",") for line in lines[1:])]
    other = tmp_path / "swapped.csv"
    other.write_text("\ufeff" + "\n".join(swapped) + "\n", encoding="utf-8")
    assert run("--from-csv", str(other), "--as-of", "2025-06-30") == run(
        "--from-csv", str(path), "--as-of", "2025-06-30"
    )


def test_a_missing_file_or_a_bad_date_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        run("--from-csv", str(tmp_path / "nope.csv"), "--as-of", "2025-06-30")
    path = tmp_path / "referrals.csv"
    path.write_text("referrer_id,date\n")
    with pytest.raises(CommandError, match="'2025-06-31' is not a date"):
        run("--from-csv", str(path), "--as-of", "2025-06-31")
    with pytest.raises(CommandError):
        call_command("analytics")  # the sub-command is required
