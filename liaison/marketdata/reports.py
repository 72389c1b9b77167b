"""Import summaries and the directory-changes report, as text for the command line (the pages show
the same through `selectors`)."""

from __future__ import annotations

from collections.abc import Iterator

from liaison.marketdata import selectors
from liaison.marketdata.models import DirectoryChange, ImportRun

SHOWN_PER_SECTION = 20


def run_lines(run: ImportRun, *, already: bool = False) -> Iterator[str]:
    if already:
        yield (
            f"{run.file_name}: already imported (import #{run.pk}, {run.finished_at:%Y-%m-%d %H:%M}); nothing to do. "
            "Use --force to read it again."
        )
        return
    yield f"{run.file_name} ({run.file_format}): {run.summary()}"
    if run.attempts > 1:
        yield f"  resumed: attempt {run.attempts}"
    if run.rejected:
        yield f"  rejected rows ({run.rejected:,}; the first {len(run.rejected_rows)} listed):"
        for item in run.rejected_rows:
            where = f"row {item['row']}" if item.get("row") else "row ?"
            yield f"    {where}: {item['reason']}"
    if run.warning_count:
        yield f"  warnings ({run.warning_count:,}; the first {min(len(run.warnings), SHOWN_PER_SECTION)} listed):"
        for item in run.warnings[:SHOWN_PER_SECTION]:
            where = f"row {item['row']}: " if item.get("row") else ""
            yield f"    {where}{item['reason']}"
    for key, value in run.details.items():
        yield f"  {key.replace('_', ' ')}: {value}"


def change_lines(run: ImportRun) -> Iterator[str]:
    report = selectors.directory_changes(run)
    yield f"Directory changes from {run.file_name} (import #{run.pk}):"
    if not report.total:
        yield "  none"
        return
    sections = [
        ("New providers in our area", report.new_in_area, report.new_in_area_count),
        ("New organisations in our area", report.new_practices_in_area, report.new_practices_in_area_count),
        ("Moved", report.moved, report.moved_count),
        ("NPI deactivated", report.deactivated, report.deactivated_count),
        ("NPI reactivated", report.reactivated, report.reactivated_count),
    ]
    for title, changes, count in sections:
        yield f"  {title}: {count:,}"
        for change in list(changes[:SHOWN_PER_SECTION]):
            yield f"    {_describe(change)}"
        if count > SHOWN_PER_SECTION:
            yield f"    ... and {count - SHOWN_PER_SECTION:,} more (see /marketdata/changes/?run={run.pk})"
    if report.elsewhere_count:
        yield f"  New providers outside our area (not listed): {report.elsewhere_count:,}"


def _describe(change: DirectoryChange) -> str:
    parts = [f"{change.name} (NPI {change.npi})"]
    if change.specialty:
        parts.append(change.specialty)
    if change.kind == DirectoryChange.Kind.MOVED:
        parts.append(f"{change.old_address} -> {change.new_address}")
    elif change.new_address or change.old_address:
        parts.append(change.new_address or change.old_address)
    if change.distance_miles is not None:
        site = change.nearest_site.name if change.nearest_site else "our nearest site"
        parts.append(f"{change.distance_miles:.1f} mi from {site}")
    if change.on_date:
        parts.append(f"on {change.on_date:%Y-%m-%d}")
    return "; ".join(parts)
