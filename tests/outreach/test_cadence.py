"""Tiers and cadence: rolling intervals and calendar periods, across year boundaries and rule
changes; the daily job creates each due task once and a logged touch closes it."""

from datetime import date

import pytest

from liaison.outreach import cadence, services
from liaison.outreach.models import CadenceRule, CadenceUnit, Task, TaskStatus, Tier, Touch
from liaison.outreach.tasks import create_cadence_tasks
from tests.outreach.conftest import local


def rule(touch, every, unit):
    return CadenceRule(tier=Tier(code="A"), touch=touch, every=every, unit=unit)


def test_calendar_quarters_are_counted_from_january():
    assert cadence.period_bounds(date(2025, 12, 15), CadenceUnit.QUARTER, 1) == (
        date(2025, 10, 1),
        date(2025, 12, 31),
    )
    assert cadence.period_bounds(date(2026, 1, 2), CadenceUnit.QUARTER, 1) == (
        date(2026, 1, 1),
        date(2026, 3, 31),
    )
    assert cadence.period_bounds(date(2026, 8, 2), CadenceUnit.QUARTER, 2) == (
        date(2026, 7, 1),
        date(2026, 12, 31),
    )
    assert cadence.period_bounds(date(2026, 2, 14), CadenceUnit.MONTH, 1) == (
        date(2026, 2, 1),
        date(2026, 2, 28),
    )


def test_a_rolling_visit_rule_crosses_the_new_year():
    visit = rule(Touch.IN_PERSON, 30, CadenceUnit.DAY)
    last = date(2025, 12, 20)
    assert cadence.evaluate_rule(visit, last, None, date(2026, 1, 5)) is None  # due 19 Jan: too early
    assert cadence.evaluate_rule(visit, last, None, date(2026, 1, 12)) == (
        date(2026, 1, 19),
        "",
    )  # a week ahead
    assert cadence.evaluate_rule(visit, last, None, date(2026, 2, 1)) == (date(2026, 1, 19), "")  # overdue
    assert cadence.evaluate_rule(visit, None, None, date(2026, 2, 1)) == (
        date(2026, 2, 1),
        "",
    )  # never visited
    assert cadence.evaluate_rule(visit, last, date(2026, 2, 3), date(2026, 2, 1)) is None  # already planned


def test_a_lunch_in_december_does_not_count_for_the_first_quarter():
    lunch_rule = rule(Touch.LUNCH, 1, CadenceUnit.QUARTER)
    december = date(2025, 12, 15)
    assert cadence.evaluate_rule(lunch_rule, december, None, date(2025, 12, 20)) is None  # Q4 has its lunch
    assert cadence.evaluate_rule(lunch_rule, december, None, date(2026, 1, 10)) is None  # too early in Q1
    assert cadence.evaluate_rule(lunch_rule, december, None, date(2026, 3, 5)) == (
        date(2026, 3, 31),
        "Q1 2026",
    )
    assert cadence.evaluate_rule(lunch_rule, date(2026, 1, 2), None, date(2026, 3, 5)) is None  # Q1 had one
    assert (
        cadence.evaluate_rule(lunch_rule, december, date(2026, 3, 20), date(2026, 3, 5)) is None
    )  # planned in Q1
    assert (
        cadence.evaluate_rule(lunch_rule, december, date(2026, 4, 20), date(2026, 3, 5)) is not None
    )  # planned in Q2


def test_the_last_quarter_of_the_year_ends_on_new_years_eve():
    lunch_rule = rule(Touch.LUNCH, 1, CadenceUnit.QUARTER)
    assert cadence.evaluate_rule(lunch_rule, date(2025, 9, 30), None, date(2025, 12, 2)) == (
        date(2025, 12, 31),
        "Q4 2025",
    )


def test_calendar_blocks_must_divide_the_year(db):
    tier = Tier.objects.get(code="B")
    with pytest.raises(Exception, match="divide a year"):
        services.set_cadence_rules(tier, [(Touch.LUNCH, 5, CadenceUnit.MONTH)], actor="manager")


@pytest.fixture
def tier_a(db):
    return Tier.objects.get(code="A")


def test_the_daily_job_creates_each_due_task_once_for_the_owner(account, office, liaison, tier_a):
    services.update_account(account, actor="test", tier=tier_a)
    services.log_activity(
        actor=liaison,
        account=account,
        kind="visit",
        occurred_at=local(2025, 12, 1),
        providers=[office.dr_family],
    )
    result = services.create_due_tasks(today=date(2026, 1, 5))
    assert result == {"created": 1, "no_owner": 0}  # the visit (due 31 Dec); Q1's lunch not yet
    task = Task.objects.get()
    assert task.assignee == liaison and task.kind == "cadence" and task.due_on == date(2025, 12, 31)
    assert task.title.startswith("Visit Maple Family Medicine") and "visit every 30 days" in task.title
    assert services.create_due_tasks(today=date(2026, 1, 6))["created"] == 0  # still open: not again
    services.create_due_tasks(today=date(2026, 3, 10))
    assert Task.objects.filter(cadence_touch=Touch.LUNCH, due_on=date(2026, 3, 31)).count() == 1


def test_logging_the_touch_closes_the_cadence_task(account, office, liaison, tier_a):
    services.update_account(account, actor="test", tier=tier_a)
    services.create_due_tasks(today=date(2026, 3, 10))
    assert set(Task.objects.values_list("cadence_touch", flat=True)) == {"in_person", "lunch"}
    # A lunch is also a visit: it closes both.
    services.log_activity(
        actor=liaison, account=account, kind="lunch", occurred_at=local(2026, 3, 12), contacts=[office.nurse]
    )
    assert not Task.objects.filter(status=TaskStatus.OPEN).exists()
    # Done when the lunch happened, not when it was logged: the cadence was kept on that day.
    assert set(Task.objects.values_list("done_at", flat=True)) == {local(2026, 3, 12)}


def test_a_call_satisfies_only_an_any_touch_rule(account, office, liaison):
    services.update_account(account, actor="test", tier=Tier.objects.get(code="C"))
    services.log_activity(actor=liaison, account=account, kind="call", occurred_at=local(2026, 1, 10))
    assert services.create_due_tasks(today=date(2026, 3, 1))["created"] == 0  # any touch, every 90 days
    assert services.create_due_tasks(today=date(2026, 4, 5))["created"] == 1


def test_changing_the_rules_changes_what_is_due(account, office, liaison, tier_a):
    services.update_account(account, actor="test", tier=tier_a)
    services.log_activity(
        actor=liaison, account=account, kind="visit", occurred_at=local(2026, 1, 2), contacts=[office.nurse]
    )
    services.log_activity(
        actor=liaison, account=account, kind="lunch", occurred_at=local(2026, 1, 2), contacts=[office.nurse]
    )
    assert services.create_due_tasks(today=date(2026, 1, 20))["created"] == 0
    services.set_cadence_rules(tier_a, [(Touch.IN_PERSON, 2, CadenceUnit.WEEK)], actor="manager")
    assert services.create_due_tasks(today=date(2026, 1, 20))["created"] == 1


def test_accounts_without_an_owner_are_counted_not_assigned(office, tier_a):
    account = services.add_to_pipeline(office.practice, actor="test", tier=tier_a)
    assert account.owner is None
    assert services.create_due_tasks(today=date(2026, 1, 5)) == {"created": 0, "no_owner": 1}


def test_the_job_is_registered_to_run_daily():
    from liaison.core.jobs import periodic_jobs

    job = next(p for p in periodic_jobs() if p.name == "liaison.outreach.tasks.create_cadence_tasks")
    assert job.every.days == 1
    assert create_cadence_tasks.func.__name__ == "create_cadence_tasks"
