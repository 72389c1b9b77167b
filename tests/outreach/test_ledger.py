"""The non-monetary compensation ledger: who counts, the per-head split, calendar years in the
practice's time zone, the yearly limit (and changes to it), warnings and the confirmation."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from liaison.directory import services as directory
from liaison.directory.models import Provider
from liaison.outreach import ledger, services
from liaison.outreach.models import ActivityStatus, CompensationLimit, LedgerEntry
from tests.conftest import make_npi
from tests.outreach.conftest import local, lunch


def total(provider, year):
    return ledger.standings([provider], year)[0].spent


def test_a_lunch_is_split_per_head_and_only_referring_physicians_are_charged(account, office, our_doctors):
    lunch(account, office, our_doctors, when=local(2026, 3, 10), cost="120.00")
    # Four from the office ate: two physicians, a nurse, a referral coordinator: $30 a head.
    entries = {e.provider_id: e.amount for e in LedgerEntry.objects.all()}
    assert entries == {office.dr_family.pk: Decimal("30.00"), office.dr_second.pk: Decimal("30.00")}
    # Our own physicians are neither charged nor in the divisor.
    assert not LedgerEntry.objects.filter(provider__in=our_doctors).exists()


def test_mid_levels_are_in_the_head_count_but_have_no_limit(account, office, our_doctors):
    lunch(
        account,
        office,
        our_doctors,
        when=local(2026, 3, 10),
        cost="100.00",
        providers=[office.dr_family, office.np],
        contacts=[office.nurse],
    )
    assert list(LedgerEntry.objects.values_list("provider_id", "amount")) == [
        (office.dr_family.pk, Decimal("33.34"))
    ]
    assert not ledger.counts_against_limit(office.np)


def test_a_larger_head_count_lowers_each_share(account, office, our_doctors):
    lunch(account, office, our_doctors, when=local(2026, 3, 10), cost="120.00", office_head_count=8)
    assert set(LedgerEntry.objects.values_list("amount", flat=True)) == {Decimal("15.00")}


@pytest.mark.parametrize(
    ("credential", "taxonomy", "counts"),
    [
        ("MD", "207Q00000X", True),
        ("DO", "207R00000X", True),
        ("DPM", "213E00000X", True),  # podiatrist: a physician under Stark
        ("DC", "111N00000X", True),  # chiropractor too
        ("NP", "363LF0000X", False),
        ("PA-C", "363A00000X", False),
        ("M.D.", "", True),  # no taxonomy: the credential decides
        ("RN", "", False),
    ],
)
def test_who_counts_as_a_physician_for_the_limit(db, credential, taxonomy, counts):
    p = directory.create_provider(
        actor="test",
        first_name="A",
        last_name=credential,
        credential=credential,
        primary_taxonomy_code=taxonomy,
    )
    assert ledger.counts_against_limit(p) is counts


def test_a_lunch_late_on_new_years_eve_counts_in_the_old_year(account, office, our_doctors):
    # 23:30 in Columbus on 31 December 2025 is already 2026 in UTC.
    lunch(account, office, our_doctors, when=local(2025, 12, 31, 23, 30), cost="80.00")
    lunch(account, office, our_doctors, when=local(2026, 1, 1, 0, 30), cost="40.00")
    assert total(office.dr_family, 2025) == Decimal("20.00")
    assert total(office.dr_family, 2026) == Decimal("10.00")
    assert LedgerEntry.objects.filter(year=2025).get(provider=office.dr_family).on.isoformat() == "2025-12-31"


def test_the_limit_of_each_year_is_its_own_and_a_missing_year_uses_the_last_one_set(db):
    assert ledger.limit_for(2024).amount == Decimal("507.00")
    assert ledger.limit_for(2025).amount == Decimal("521.00")
    assert ledger.limit_for(2026).amount == Decimal("535.00")
    carried = ledger.limit_for(2027)
    assert carried.amount == Decimal("535.00") and carried.is_carried_over and carried.set_for_year == 2026
    assert ledger.limit_for(2019) is None


def test_warnings_at_80_percent_and_a_change_of_the_limit_moves_them(account, office, our_doctors):
    # $430 of $535 is 80.4 %.
    lunch(account, office, our_doctors, when=local(2026, 2, 1), cost="1720.00")
    standing = ledger.standings([office.dr_family], 2026)[0]
    assert standing.spent == Decimal("430.00") and standing.level == "warning" and standing.percent == 81
    # The admin corrects the 2026 limit upwards: no longer a warning.
    services.set_compensation_limit(2026, Decimal("600.00"), actor="admin")
    assert ledger.standings([office.dr_family], 2026)[0].level == "ok"
    # The same spending in 2025 (limit $521) is 83 %: the years do not mix.
    assert ledger.standings([office.dr_family], 2025)[0].spent == 0


def test_going_over_the_limit_needs_a_confirmation(account, office, our_doctors):
    lunch(account, office, our_doctors, when=local(2026, 2, 1), cost="2000.00")  # $500 each
    with pytest.raises(ValidationError) as exc:
        lunch(account, office, our_doctors, when=local(2026, 3, 1), cost="200.00")  # +$50 -> $550
    assert "over the $535.00 limit by $15.00" in str(exc.value)
    assert LedgerEntry.objects.count() == 2  # nothing half-written
    activity = lunch(
        account, office, our_doctors, when=local(2026, 3, 1), cost="200.00", confirm_over_limit=True
    )
    assert {w.level for w in activity.limit_warnings} == {"over"}
    standing = ledger.standings([office.dr_family], 2026)[0]
    assert standing.spent == Decimal("550.00") and standing.level == "over"
    # In January the slate is clean.
    assert not lunch(account, office, our_doctors, when=local(2027, 1, 5), cost="200.00").limit_warnings


def test_a_planned_lunch_that_would_exceed_the_limit_warns_before_it_happens(account, office, our_doctors):
    lunch(account, office, our_doctors, when=local(2026, 2, 1), cost="1600.00")  # $400 each: 75 %
    planned = lunch(
        account, office, our_doctors, when=local(2099, 1, 1), cost="400.00", status=ActivityStatus.PLANNED
    )
    assert planned.status == "planned" and not planned.limit_warnings  # 2099: a fresh year
    warnings = services.preview_limit_warnings(
        cost=Decimal("600.00"),
        occurred_at=local(2026, 11, 1),
        providers=[office.dr_family],
        contacts_count=3,
        status=ActivityStatus.PLANNED,
    )
    assert [w.level for w in warnings] == ["over"]
    standing = ledger.standings([office.dr_family], 2026)[0]
    assert standing.planned == 0 and standing.spent == Decimal("400.00")


def test_planned_activities_are_projections_and_cancelled_ones_count_for_nothing(
    account, office, our_doctors
):
    a = lunch(
        account, office, our_doctors, when=local(2026, 2, 1), cost="120.00", status=ActivityStatus.PLANNED
    )
    s = ledger.standings([office.dr_family], 2026)[0]
    assert (s.spent, s.planned) == (Decimal("0"), Decimal("30.00"))
    services.update_activity(a, actor="test", status=ActivityStatus.COMPLETED, cost=Decimal("160.00"))
    s = ledger.standings([office.dr_family], 2026)[0]
    assert (s.spent, s.planned, s.activities) == (Decimal("40.00"), Decimal("0"), 1)
    services.update_activity(a, actor="test", status=ActivityStatus.CANCELLED)
    assert ledger.standings([office.dr_family], 2026)[0].spent == 0
    assert not LedgerEntry.objects.exists()


def test_moving_a_lunch_across_new_year_moves_its_entries(account, office, our_doctors):
    a = lunch(account, office, our_doctors, when=local(2025, 12, 20), cost="120.00")
    services.update_activity(a, actor="test", occurred_at=local(2026, 1, 3))
    assert total(office.dr_family, 2025) == 0 and total(office.dr_family, 2026) == Decimal("30.00")


def test_the_yearly_report_lists_each_physician_most_compensated_first(account, office, our_doctors):
    lunch(account, office, our_doctors, when=local(2026, 2, 1), cost="120.00")
    lunch(
        account,
        office,
        our_doctors,
        when=local(2026, 5, 1),
        cost="90.00",
        providers=[office.dr_second],
        contacts=[office.nurse],
    )
    rows = ledger.yearly_report(2026)
    assert [(r.provider, r.spent, r.activities) for r in rows] == [
        (office.dr_second, Decimal("75.00"), 2),
        (office.dr_family, Decimal("30.00"), 1),
    ]
    assert rows[0].limit.amount == Decimal("535.00")
    assert ledger.yearly_report(2025) == []


def test_limits_are_unique_per_year(db):
    services.set_compensation_limit(2030, Decimal("600"), actor="admin")
    services.set_compensation_limit(2030, Decimal("610"), actor="admin")
    assert CompensationLimit.objects.get(year=2030).amount == Decimal("610")
    with pytest.raises(ValidationError):
        services.set_compensation_limit(2030, Decimal("-1"), actor="admin")


def test_our_physicians_cannot_be_listed_as_referring_providers(account, office, our_doctors):
    with pytest.raises(ValidationError) as exc:
        lunch(account, office, our_doctors, when=local(2026, 2, 1), providers=[our_doctors[0]])
    assert "providers" in exc.value.message_dict
    assert not Provider.objects.filter(npi=make_npi(99)).exists()


def test_the_reference_data_the_demo_restores_is_what_the_migration_seeds(db):
    from liaison.outreach.models import CadenceRule, Tier

    before = (
        Tier.objects.count(),
        CadenceRule.objects.count(),
        list(CompensationLimit.objects.values_list("year", "amount")),
    )
    services.ensure_reference_data()
    after = (
        Tier.objects.count(),
        CadenceRule.objects.count(),
        list(CompensationLimit.objects.values_list("year", "amount")),
    )
    assert (
        before
        == after
        == (3, 5, [(2026, Decimal("535.00")), (2025, Decimal("521.00")), (2024, Decimal("507.00"))])
    )
