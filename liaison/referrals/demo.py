"""Demo referrals: two years of history over the demo directory, and open referrals in every state.

Each referring provider gets a profile: a base rate (most send a few a year, a few send several a
month), loyal or splitter, a few cooling off (a drop of 85-100% two to four months ago, for the detector to find) and a few new
ones; summer and year-end dips; weekdays only. History is written in bulk (with one audit row
for the load); the most recent referrals go through the real services so that their timelines,
letters and audit rows are exactly what users will see.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from django.utils import timezone

from liaison.audit.services import record
from liaison.core.demo import DEMO_ACTOR, DemoContext
from liaison.core.geo import haversine_miles
from liaison.core.phi import phi_index
from liaison.directory.demo import FIRST, LAST
from liaison.referrals import services
from liaison.referrals.models import (
    Channel,
    EventKind,
    Holiday,
    Notification,
    NotifyBy,
    Referral,
    ReferralEvent,
    ServiceLine,
    Status,
    Urgency,
)
from liaison.referrals.notifications import notify
from liaison.referrals.services import MILESTONES
from liaison.referrals.tasks import check_service_levels

DAYS = 730
LIVE_DAYS = 12  # the last days go through the services (timelines with notifications)
COOLING_RATE = 7.0  # referrals a month, at least, of a referrer the demo makes cool off
COOLING_HISTORY_DAYS = 480  # ... and how long it must have been referring

SERVICE_LINES = {
    # taxonomy of our physician -> (service line, first contact, appointment, note), reasons (text, ICD-10)
    "207XS0114X": (
        "Joint replacement",
        1,
        15,
        2,
        [("Knee osteoarthritis, failed conservative care", "M17.11"), ("Hip osteoarthritis", "M16.12")],
    ),
    "207XX0005X": (
        "Sports medicine",
        1,
        7,
        2,
        [("Suspected ACL tear after soccer injury", "S83.511A"), ("Rotator cuff tear", "M75.101")],
    ),
    "207XS0106X": (
        "Hand and upper extremity",
        1,
        10,
        2,
        [("Carpal tunnel syndrome", "G56.01"), ("Trigger finger", "M65.30")],
    ),
    "207XS0117X": (
        "Spine",
        2,
        15,
        3,
        [("Lumbar stenosis with radiculopathy", "M48.062"), ("Cervical disc herniation", "M50.20")],
    ),
    "207XX0004X": (
        "Foot and ankle",
        1,
        10,
        2,
        [("Bunion, painful", "M20.11"), ("Ankle instability", "M25.371")],
    ),
    "207XX0801X": (
        "Fracture care",
        1,
        3,
        1,
        [("Distal radius fracture", "S52.501A"), ("Ankle fracture", "S82.891A")],
    ),
}
PAYERS = [
    ("Medicare", 34),
    ("Anthem", 16),
    ("Medical Mutual", 12),
    ("UnitedHealthcare", 11),
    ("Aetna", 8),
    ("CareSource (Medicaid)", 12),
    ("Self-pay", 3),
    ("Humana", 4),
]
CHANNELS = [
    (Channel.FAX, 52),
    (Channel.EREFERRAL, 20),
    (Channel.PHONE, 9),
    (Channel.HL7, 10),
    (Channel.PORTAL, 6),
    (Channel.WALK_IN, 3),
]

# Patients' surnames, none of them a provider's or a staff member's (directory.demo.LAST): no
# patient shares a name with someone the pages may show, so a test that looks for a patient's name
# on a page finds it only where patient data leaked.
PATIENT_LAST = [
    name
    for name in [
        "Adams",
        "Allen",
        "Anderson",
        "Bailey",
        "Baker",
        "Brooks",
        "Brown",
        "Campbell",
        "Carter",
        "Clark",
        "Collins",
        "Cook",
        "Cooper",
        "Cox",
        "Cruz",
        "Davis",
        "Diaz",
        "Edwards",
        "Evans",
        "Flores",
        "Garcia",
        "Gomez",
        "Gonzalez",
        "Gray",
        "Green",
        "Hall",
        "Harris",
        "Hernandez",
        "Hill",
        "Howard",
        "Jackson",
        "Johnson",
        "Jones",
        "Kelly",
        "King",
        "Lee",
        "Lewis",
        "Lopez",
        "Martin",
        "Martinez",
        "Miller",
        "Mitchell",
        "Moore",
        "Morgan",
        "Morris",
        "Murphy",
        "Nelson",
        "Nguyen",
        "Parker",
        "Perez",
        "Peterson",
        "Phillips",
        "Price",
        "Reed",
        "Richardson",
        "Rivera",
        "Roberts",
        "Robinson",
        "Rodriguez",
        "Rogers",
        "Ross",
        "Russell",
        "Sanchez",
        "Sanders",
        "Scott",
        "Smith",
        "Stewart",
        "Taylor",
        "Thomas",
        "Thompson",
        "Torres",
        "Turner",
        "Walker",
        "Watson",
        "White",
        "Williams",
        "Wilson",
        "Wood",
        "Wright",
    ]
    if name not in LAST
]


def us_holidays(year: int) -> list[tuple[dt.date, str]]:
    def nth_weekday(month: int, weekday: int, n: int) -> dt.date:
        day = dt.date(year, month, 1)
        day += dt.timedelta(days=(weekday - day.weekday()) % 7)
        return day + dt.timedelta(weeks=n - 1)

    last_monday_may = max(dt.date(year, 5, d) for d in range(25, 32) if dt.date(year, 5, d).weekday() == 0)
    return [
        (dt.date(year, 1, 1), "New Year's Day"),
        (nth_weekday(1, 0, 3), "Martin Luther King Jr. Day"),
        (last_monday_may, "Memorial Day"),
        (dt.date(year, 6, 19), "Juneteenth"),
        (dt.date(year, 7, 4), "Independence Day"),
        (nth_weekday(9, 0, 1), "Labor Day"),
        (nth_weekday(11, 3, 4), "Thanksgiving"),
        (nth_weekday(11, 3, 4) + dt.timedelta(days=1), "Day after Thanksgiving"),
        (dt.date(year, 12, 25), "Christmas Day"),
    ]


def _pick(rng: Any, weighted: list[tuple[Any, int]]) -> Any:
    return rng.choices([w[0] for w in weighted], weights=[w[1] for w in weighted])[0]


def _season(day: dt.date) -> float:
    if day.month in (7, 8):
        return 0.75
    if day.month == 12:
        return 0.7 if day.day < 20 else 0.35
    if day.month == 1:
        return 1.15
    return 1.0


def _profiles(
    ctx: DemoContext, providers: list[Any], today: dt.date, accounts: dict[int, Any]
) -> dict[int, dict[str, Any]]:
    """How each referrer behaves; where outreach has a story for the practice, the referrals follow it:
    prospects do not refer yet, accounts opened by outreach start at their first referral, at-risk
    ones cool off and lapsed ones stopped."""
    from liaison.outreach.models import PROSPECT_STAGES, Stage

    rng, profiles = ctx.rng, {}
    for p in providers:
        location = p.locations.first()
        account = accounts.get(location.practice_id) if location else None
        mid_level = p.credential in ("NP", "PA-C")
        base = math.exp(rng.gauss(-0.6, 1.0)) * (0.5 if mid_level else 1.0)
        kind = _pick(rng, [("loyal", 62), ("splitter", 22), ("cooling", 9), ("new", 7)])
        profile = {
            "rate": min(base, 14.0),
            "kind": kind,
            "start": today - dt.timedelta(days=DAYS),
            "drop_at": None,
            "drop": 0.0,
        }
        if kind == "splitter":
            profile["rate"] *= 0.45
        elif kind == "cooling":
            # Clear enough for the detector: a steady referrer that all but stopped three to four
            # months ago (its 84-day window falls after the drop; it looks at the last 16 weeks).
            profile["rate"] = max(profile["rate"], COOLING_RATE)
            profile["drop_at"] = today - dt.timedelta(days=rng.randrange(88, 112))
            profile["drop"] = rng.uniform(0.9, 1.0)
        elif kind == "new":
            profile["start"] = today - dt.timedelta(days=rng.randrange(60, 270))
        if account is not None:
            if account.stage in PROSPECT_STAGES:
                profile.update(rate=0.0, kind="prospect")
            elif account.first_referral_after_outreach and account.first_referral_at:
                profile.update(
                    start=timezone.localtime(account.first_referral_at).date(),
                    kind="opened by outreach",
                    drop_at=None,
                    drop=0.0,
                )
                profile["rate"] = max(profile["rate"], 0.8)
            # Only a referrer with a year of history before the detector's 16 weeks can be seen to
            # cool off; a practice that started referring since stays as it is.
            cooling_practice = account.practice_id in ctx.data.get("cooling_practices", ())
            if cooling_practice and profile["start"] <= today - dt.timedelta(days=COOLING_HISTORY_DAYS):
                profile.update(
                    kind="cooling",
                    rate=max(profile["rate"], COOLING_RATE),
                    drop_at=today - dt.timedelta(days=rng.randrange(88, 112)),
                    drop=rng.uniform(0.9, 1.0),
                )
            elif account.stage == Stage.LAPSED:
                lapsed_on = timezone.localtime(account.stage_changed_at).date()
                profile.update(
                    kind="lapsed", drop_at=lapsed_on - dt.timedelta(days=rng.randrange(30, 90)), drop=1.0
                )
        profiles[p.pk] = profile
    return profiles


def _nearest_site(location: Any, sites: list[Any]) -> Any:
    if location is None or location.latitude is None:
        return sites[0]
    return min(
        sites, key=lambda s: haversine_miles(location.latitude, location.longitude, s.latitude, s.longitude)
    )


def _lifecycle(rng: Any, received: dt.datetime, now: dt.datetime) -> list[tuple[str, dt.datetime, dict]]:
    """The steps a referral went through (status, when, data), ending no later than now."""
    steps: list[tuple[str, dt.datetime, dict]] = []

    def at(base: dt.datetime, days: float, hour: int | None = None) -> dt.datetime:
        t = base + dt.timedelta(days=days)
        while t.weekday() >= 5:
            t += dt.timedelta(days=1)
        return t.replace(
            hour=hour if hour is not None else rng.randrange(8, 17), minute=rng.choice([0, 15, 30, 45])
        )

    accepted = at(received, rng.choice([0, 0, 1, 1, 2]))
    outcome = _pick(
        rng, [("closed", 76), ("declined", 5), ("cancelled", 7), ("no_show", 6), ("unreachable", 6)]
    )
    if accepted > now:
        return steps
    if outcome == "declined":
        return [
            (
                "declined",
                accepted,
                {"decline_reason": rng.choice(["not_covered", "wrong_specialty", "incomplete"])},
            )
        ]
    steps.append(("accepted", accepted, {}))
    if outcome == "unreachable":
        when = at(accepted, rng.randrange(10, 25))
        return steps + ([("cancelled", when, {})] if when <= now else [])
    scheduled_on = at(accepted, rng.choice([0, 1, 1, 2, 3]))
    appointment = at(scheduled_on, rng.randrange(1, 16), hour=rng.randrange(8, 16))
    if scheduled_on > now:
        return steps
    steps.append(("scheduled", scheduled_on, {"appointment_at": appointment}))
    if outcome == "cancelled":  # the day before the appointment, or soon after booking a close one
        when = max(min(appointment - dt.timedelta(days=1), now), scheduled_on + dt.timedelta(hours=2))
        return steps + ([("cancelled", when, {})] if when <= now else [])
    if appointment > now:
        return steps
    if outcome == "no_show":
        steps.append(("no_show", appointment + dt.timedelta(hours=1), {}))
        # Most no-shows are rescheduled and seen; the rest are closed after a few tries.
        follow_up = at(appointment, rng.randrange(2, 8))
        if follow_up > now:
            return steps
        if rng.random() < 0.4:
            return [*steps, ("cancelled", follow_up, {})]
        appointment = at(follow_up, rng.randrange(3, 15), hour=rng.randrange(8, 16))
        steps.append(("scheduled", follow_up, {"appointment_at": appointment}))
        if appointment > now:
            return steps
    steps.append(("seen", appointment + dt.timedelta(hours=1), {}))
    note = at(appointment, rng.choice([0, 1, 1, 2, 3, 5, 8]))
    if note > now:
        return steps
    steps.append(
        (
            "note_sent",
            note,
            {
                "channel": rng.choice(["fax", "fax", "ehr"]),
                "included": ["consult_note"] + (["recommendations"] if rng.random() < 0.6 else []),
            },
        )
    )
    closed = note + dt.timedelta(days=rng.randrange(1, 12))
    if closed <= now:
        steps.append(("closed", closed, {}))
    return steps


def generate(ctx: DemoContext) -> str:
    rng = ctx.rng
    now = timezone.now()
    today = timezone.localdate()
    users = ctx.data["users"]
    coordinator = users["coordinator"]
    sites = ctx.data["sites"]
    for year in (today.year - 2, today.year - 1, today.year, today.year + 1):
        for day, name in us_holidays(year):
            Holiday.objects.get_or_create(date=day, defaults={"name": name})
    lines: dict[str, ServiceLine] = {}
    reasons: dict[int, list] = {}
    for code, (name, contact, appointment, note, _reasons) in SERVICE_LINES.items():
        lines[code] = ServiceLine.objects.get_or_create(
            name=name,
            defaults={"first_contact_days": contact, "appointment_days": appointment, "note_days": note},
        )[0]
    physicians = ctx.data["our_physicians"]
    for physician in physicians:
        reasons[physician.pk] = SERVICE_LINES[physician.primary_taxonomy_id][4]

    from liaison.outreach.models import Account
    from liaison.outreach.services import record_first_referral

    providers = list(ctx.data["referring_providers"])
    accounts = {a.practice_id: a for a in Account.objects.filter(location__isnull=True)}
    profiles = _profiles(ctx, providers, today, accounts)
    ctx.data["referrer_kinds"] = {pk: profile["kind"] for pk, profile in profiles.items()}
    locations = {p.pk: p.locations.first() for p in providers}
    history: list[tuple[Any, dt.datetime]] = []
    for p in providers:
        profile = profiles[p.pk]
        for offset in range(DAYS, -1, -1):
            day = today - dt.timedelta(days=offset)
            if day.weekday() >= 5 or day < profile["start"]:
                continue
            rate = profile["rate"] / 21.7 * _season(day)
            if profile["drop_at"] and day >= profile["drop_at"]:
                rate *= 1 - profile["drop"]
            if rng.random() < rate:
                received = timezone.make_aware(
                    dt.datetime.combine(day, dt.time(rng.randrange(7, 18), rng.randrange(60)))
                )
                if received < now:
                    history.append((p, received))
    history.sort(key=lambda item: item[1])
    live_since = now - dt.timedelta(days=LIVE_DAYS)

    def fields(provider: Any, received: dt.datetime) -> dict[str, Any]:
        physician = rng.choice(physicians)
        reason, icd = rng.choice(reasons[physician.pk])
        first, last = rng.choice(FIRST), rng.choice(PATIENT_LAST)
        dob = dt.date(rng.randrange(1935, 2012), rng.randrange(1, 13), rng.randrange(1, 29))
        location = locations[provider.pk]
        return {
            "patient_first_name": first,
            "patient_last_name": last,
            "patient_dob": dob,
            "patient_phone": f"(614) 555-01{rng.randrange(100):02d}",
            "patient_mrn": f"SVO{rng.randrange(10**6, 10**7)}",
            "patient_zip": location.zip_code if location else "",
            "member_id": f"{rng.choice('ABCDWXYZ')}{rng.randrange(10**8, 10**9)}",
            "payer": _pick(rng, PAYERS),
            "reason": reason,
            "icd10_codes": icd,
            "urgency": _pick(rng, [(Urgency.ROUTINE, 86), (Urgency.URGENT, 12), (Urgency.STAT, 2)]),
            "channel": _pick(rng, CHANNELS),
            "site": _nearest_site(location, sites),
            "referred_to_physician": physician,
            "service_line": lines[physician.primary_taxonomy_id],
            "assigned_to": coordinator if rng.random() < 0.7 else None,
            "referring_provider": provider,
            "referring_location": location,
        }

    bulk_rows, bulk_steps = [], []
    for provider, received in history:
        if received >= live_since:
            continue
        data = fields(provider, received)
        steps = _lifecycle(rng, received, now)
        referral = Referral(received_at=received, **data)
        referral.patient_key = phi_index(data["patient_last_name"], data["patient_dob"])
        referral.patient_name_key = phi_index(data["patient_last_name"])
        referral.mrn_key = phi_index(data["patient_mrn"])
        referral.status = steps[-1][0] if steps else Status.RECEIVED
        for status, when, extra in steps:
            if status == "scheduled":
                referral.appointment_at = extra["appointment_at"]
                referral.first_contact_at = referral.first_contact_at or when
            elif status == "seen":
                referral.seen_at = when
            elif status == "note_sent":
                referral.note_sent_at = when
            elif status == "closed":
                referral.closed_at = when
        bulk_rows.append(referral)
        bulk_steps.append(steps)
    Referral.objects.bulk_create(bulk_rows, batch_size=1000)
    events = []
    for referral, steps in zip(bulk_rows, bulk_steps, strict=True):
        previous = ""
        events.append(
            ReferralEvent(
                referral=referral,
                kind=EventKind.STATUS,
                at=referral.received_at,
                actor_label=DEMO_ACTOR,
                to_status=Status.RECEIVED,
                data={"channel": referral.channel},
            )
        )
        previous = Status.RECEIVED
        for status, when, extra in steps:
            data = {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in extra.items()}
            events.append(
                ReferralEvent(
                    referral=referral,
                    kind=EventKind.STATUS,
                    at=when,
                    actor=coordinator,
                    actor_label=coordinator.email,
                    from_status=previous,
                    to_status=status,
                    data=data,
                )
            )
            previous = status
    ReferralEvent.objects.bulk_create(events, batch_size=2000)
    # Practices that refer without any outreach story become referring accounts, from their first referral.
    first_by_practice: dict[int, dt.datetime] = {}
    for referral in bulk_rows:
        if referral.referring_location is not None:
            first_by_practice.setdefault(referral.referring_location.practice_id, referral.received_at)
    practices = {p.pk: p for p in ctx.data["practices"]}
    for practice_id, first in first_by_practice.items():
        if practice_id not in accounts:
            record_first_referral(practices[practice_id], when=first, actor=DEMO_ACTOR)
    record(
        DEMO_ACTOR,
        "import",
        object_type="referrals.referral",
        object_repr="demo referral history",
        changes={"referrals": len(bulk_rows), "events": len(events)},
    )

    # The last days through the real services: notifications, audit rows, open work in every state.
    live = 0
    for provider, received in history:
        if received < live_since:
            continue
        data = fields(provider, received)
        data.pop("referring_location")
        referral = services.receive_referral(
            actor=DEMO_ACTOR, referring_provider=data.pop("referring_provider"), received_at=received, **data
        )
        for status, when, extra in _lifecycle(rng, received, now):
            services.change_status(referral, status, actor=coordinator, at=when, **extra)
        live += 1
    # The offices were told as each step happened, as the worker would have done minutes after it
    # (its queued jobs then find them sent), not when the demo is served: the coordinators' KPI
    # counts the hours between the two.
    # Letters are faxed by the coordinators a few hours later (one in twelve only the next day);
    # about half of the last three days' (a weekend) still wait in "Letters to send".
    for event in (
        ReferralEvent.objects.filter(
            referral__received_at__gte=live_since, kind=EventKind.STATUS, to_status__in=MILESTONES
        )
        .exclude(to_status=Status.RECEIVED, from_status__gt="")  # re-opened: not acknowledged again
        .select_related("referral__referring_location__referral_preference__contact")
    ):
        notification = notify(event)
        if notification is None:
            continue
        made = min(event.at + dt.timedelta(minutes=rng.randrange(2, 90)), now)
        Notification.objects.filter(pk=notification.pk).update(
            created_at=made, sent_at=made if notification.sent_at else None
        )
        ReferralEvent.objects.filter(
            referral=event.referral_id, kind=EventKind.NOTIFICATION, data__notification=notification.pk
        ).update(at=made)
        if notification.channel == NotifyBy.LETTER:
            hours = rng.uniform(20, 30) if rng.random() < 1 / 12 else rng.uniform(0.2, 4)
            faxed = made + dt.timedelta(hours=hours)
            if faxed < now and (event.at < now - dt.timedelta(hours=72) or rng.random() < 0.5):
                services.mark_letter_sent(notification, actor=coordinator, at=min(faxed, now))
    # A few whose referrer is not in the directory yet.
    for i in range(3):
        services.receive_referral(
            actor=DEMO_ACTOR,
            referrer=services.ReferrerInfo(
                first_name="Jordan", last_name=f"Unlisted{i + 1}", fax="(614) 555-0177"
            ),
            received_at=now - dt.timedelta(hours=5 + i),
            channel=Channel.FAX,
            **{
                k: v
                for k, v in fields(providers[i], now).items()
                if k not in ("referring_provider", "referring_location", "channel")
            },
        )
    breaches = check_service_levels.call()
    by_status = {s: Referral.objects.filter(status=s).count() for s in Status.values}
    return (
        f"referrals: {Referral.objects.count()} over {DAYS // 365} years ({live + 3} recent through the services), "
        f"{sum(1 for p in profiles.values() if p['kind'] == 'cooling')} referrers cooling off, "
        f"{breaches['opened']} missed service levels; by status: "
        + ", ".join(f"{k} {v}" for k, v in by_status.items())
    )
