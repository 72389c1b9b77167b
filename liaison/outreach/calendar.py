"""iCalendar (RFC 5545) for phones: a user's feed, and a day route to import.

Events carry the office's name and address and the kind of activity, nothing else: a phone's
calendar is outside our control, so no notes, no outcomes, and never patient data.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.conf import settings
from django.utils import timezone
from icalendar import Calendar, Event

from liaison.accounts.models import User
from liaison.outreach import selectors
from liaison.outreach.models import ActivityStatus, TaskStatus

FEED_PAST_DAYS = 60
FEED_FUTURE_DAYS = 180
DOMAIN = "liaison"


def _calendar(name: str) -> Calendar:
    cal = Calendar()
    cal.add("prodid", "-//Liaison//outreach//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", name)
    cal.add("x-wr-timezone", settings.TIME_ZONE)
    return cal


def _place(activity: object) -> str:
    loc = activity.location or (selectors.account_location(activity.account) if activity.account_id else None)
    return loc.short_address if loc is not None else ""


def user_calendar(user: User, now: datetime | None = None) -> bytes:
    """The user's planned and recent activities (as liaison, or attended as one of our
    physicians) and their open tasks (all-day, on the due date)."""
    now = now or timezone.now()
    cal = _calendar(f"Liaison – {user}")
    activities = selectors.activities_for(user)
    if not user.has_role("physician"):
        activities = activities.filter(liaison=user)
    activities = (
        activities.exclude(status=ActivityStatus.CANCELLED)
        .filter(
            occurred_at__gte=now - timedelta(days=FEED_PAST_DAYS),
            occurred_at__lt=now + timedelta(days=FEED_FUTURE_DAYS),
        )
        .select_related("account__practice", "account__location", "location")
        .order_by("occurred_at")
    )
    for a in activities:
        ev = Event()
        ev.add("uid", f"activity-{a.pk}@{DOMAIN}")
        ev.add("dtstamp", a.updated_at)
        ev.add("dtstart", a.occurred_at)
        ev.add(
            "dtend",
            a.occurred_at + timedelta(minutes=a.duration_minutes or (60 if a.kind == "lunch" else 30)),
        )
        ev.add("summary", f"{a.get_kind_display()}: {a.account or 'event'}")
        place = _place(a)
        if place:
            ev.add("location", place)
        ev.add("status", "TENTATIVE" if a.status == ActivityStatus.PLANNED else "CONFIRMED")
        cal.add_component(ev)
    tasks = (
        selectors.tasks_for(user)
        .filter(assignee=user, status=TaskStatus.OPEN)
        .select_related("account__practice", "account__location")
    )
    for t in tasks.order_by("due_on")[:500]:
        ev = Event()
        ev.add("uid", f"task-{t.pk}@{DOMAIN}")
        ev.add("dtstamp", t.updated_at)
        ev.add("dtstart", t.due_on)
        ev.add("dtend", t.due_on + timedelta(days=1))
        # The office only, never the task's own words: a title is typed freely, and the phone's
        # calendar (and whatever it syncs to) is outside our control.
        ev.add("summary", f"Task: {t.account}" if t.account_id else "Task (details in Liaison)")
        ev.add("transp", "TRANSPARENT")
        cal.add_component(ev)
    return cal.to_ical()


def route_calendar(plan: object, day: date, lunch_keys: set) -> bytes:
    """A computed day route as events, to import into a phone's calendar."""
    cal = _calendar(f"Route {day:%Y-%m-%d}")
    tz = timezone.get_current_timezone()
    stamp = timezone.now()
    for i, leg in enumerate(plan.legs, start=1):
        start = datetime(day.year, day.month, day.day, leg.arrival // 60, leg.arrival % 60, tzinfo=tz)
        ev = Event()
        ev.add("uid", f"route-{day:%Y%m%d}-{leg.stop.key}-{i}@{DOMAIN}")
        ev.add("dtstamp", stamp)
        ev.add("dtstart", start)
        ev.add("dtend", start + timedelta(minutes=leg.departure - leg.arrival))
        kind = "Lunch" if leg.stop.key in lunch_keys else "Visit"
        ev.add("summary", f"{i}. {kind}: {leg.stop.label}")
        if leg.stop.address:
            ev.add("location", leg.stop.address)
        ev.add(
            "description",
            f"{leg.miles:.1f} road miles, about {leg.drive_minutes} min from the previous stop.",
        )
        cal.add_component(ev)
    return cal.to_ical()
