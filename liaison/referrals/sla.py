"""Service levels in business days (weekends and the practice's holidays do not count)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.utils import timezone

from liaison.referrals.models import Holiday, Referral, SlaKind, Status


def add_business_days(start: dt.datetime, days: int, holidays: Iterable[dt.date]) -> dt.datetime:
    """`start` moved forward by `days` working days, same time of day (local time).

    A referral received on a Friday afternoon with a 1-day service level is due Monday at the
    same hour; one received on a Saturday is due at the end of the first working day after it.
    """
    closed = set(holidays)
    local = timezone.localtime(start)
    day = local.date()
    if day.weekday() >= 5 or day in closed:
        # Received while closed: the clock starts at the end of the next working day.
        while day.weekday() >= 5 or day in closed:
            day += dt.timedelta(days=1)
        local = timezone.make_aware(dt.datetime.combine(day, dt.time(17, 0)))
        days = max(0, days - 1)
    while days > 0:
        day += dt.timedelta(days=1)
        if day.weekday() < 5 and day not in closed:
            days -= 1
    return timezone.make_aware(dt.datetime.combine(day, local.timetz().replace(tzinfo=None)))


def business_days_between(start: dt.datetime, end: dt.datetime, holidays: Iterable[dt.date]) -> int:
    """Working days from start's date to end's date (0 on the same day)."""
    closed = set(holidays)
    a, b = timezone.localtime(start).date(), timezone.localtime(end).date()
    sign = 1 if b >= a else -1
    a, b = min(a, b), max(a, b)
    count, day = 0, a
    while day < b:
        day += dt.timedelta(days=1)
        if day.weekday() < 5 and day not in closed:
            count += 1
    return sign * count


def holidays_between(start: dt.date, end: dt.date) -> set[dt.date]:
    return set(Holiday.objects.filter(date__gte=start, date__lte=end).values_list("date", flat=True))


@dataclass(frozen=True)
class Due:
    kind: str
    due_at: dt.datetime
    done_at: dt.datetime | None

    @property
    def met(self) -> bool | None:
        """True/False once the step is done; None while it is pending."""
        return None if self.done_at is None else self.done_at <= self.due_at

    def overdue(self, now: dt.datetime) -> bool:
        return self.done_at is None and now > self.due_at


def due_dates(referral: Referral, holidays: set[dt.date]) -> list[Due]:
    """The service levels that apply to a referral now, with when each was (or is) due."""
    line = referral.service_line
    first_contact_days = line.first_contact_days if line else 1
    appointment_days = line.appointment_days if line else 10
    note_days = line.note_days if line else 2
    out = []
    if referral.status not in (Status.DECLINED, Status.CANCELLED):
        out.append(
            Due(
                SlaKind.FIRST_CONTACT,
                add_business_days(referral.received_at, first_contact_days, holidays),
                referral.first_contact_at,
            )
        )
        scheduled_in_time = referral.appointment_at
        out.append(
            Due(
                SlaKind.APPOINTMENT,
                add_business_days(referral.received_at, appointment_days, holidays),
                scheduled_in_time,
            )
        )
    if referral.seen_at:
        out.append(
            Due(SlaKind.NOTE, add_business_days(referral.seen_at, note_days, holidays), referral.note_sent_at)
        )
    return out
