"""Demo outreach: a year of visits, lunches with our physicians, dinner seminars, tasks, two
territories and tiers over the demo directory, so that every outreach page has something to show.

Deterministic for a seed (ctx.rng); everything goes through the services, in date order, so
that the stage history, the ledger and the cadence come out as they would in real use.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from liaison.accounts import services as accounts
from liaison.accounts.models import Role
from liaison.core.demo import DEMO_ACTOR, DemoContext
from liaison.directory.models import Contact, ContactRole, Location, Provider
from liaison.outreach import services
from liaison.outreach.models import Account, ActivityKind, ActivityStatus, Stage, Task, TaskStatus, Tier

SECOND_LIAISON = ("jordan@liaison.example", "Jordan Liaison")
COLLATERAL = [
    ("Practice brochure", "brochure", "Who we are, our sites and physicians"),
    ("Referral pad", "referral_pad", "Tear-off referral forms with our fax number"),
    ("Fax referral form (PDF)", "fax_form", "One-page form for the referral coordinator"),
    ("Same-day fracture clinic flyer", "brochure", "Walk-in fracture care, no referral delay"),
    ("Joint replacement patient guide", "brochure", "What to expect, for patients"),
]
TOPICS = [
    "Same-day fracture clinic",
    "New sports medicine physician",
    "Online referral form",
    "Hip and knee replacement outcomes",
    "Carpal tunnel: when to refer",
    "Back pain red flags and imaging",
    "Consult notes turnaround",
    "Saturday clinic hours",
]
QUESTIONS = [
    "When to order an MRI before referring a knee?",
    "Do you take patients with workers' compensation?",
    "How fast can a suspected scaphoid fracture be seen?",
    "Is physical therapy first required by the insurers?",
    "",
    "",
    "",
]
OUTCOMES = {
    ActivityKind.VISIT: [
        "Good conversation; they will try the fax form.",
        "Referral coordinator asked for more pads.",
        "Office manager concerned about wait times; promised a follow-up.",
        "Dr mentioned sending knees elsewhere; interested in our outcomes.",
    ],
    ActivityKind.DROP_IN: [
        "Quick drop-off, front desk only.",
        "Left pads and flyers with the referral coordinator.",
    ],
    ActivityKind.LUNCH: [
        "Staff appreciated the lunch; asked about Saturday hours.",
        "Good questions on imaging before referral.",
        "Dr asked for our direct line for urgent fractures.",
    ],
    ActivityKind.CALL: [
        "Left a message with the office manager.",
        "Confirmed the new fax number.",
        "Booked a lunch next month.",
    ],
    ActivityKind.EMAIL: ["Sent the online referral link.", "Sent the outcomes summary."],
}
NEXT_STEPS = [
    "Send the outcomes summary",
    "Bring 2 more referral pads",
    "Set up a lunch with the sports medicine physician",
    "Follow up on the wait-time concern",
    "Email the online referral link",
    "Introduce the new hand surgeon",
]
ISSUES = [
    ("access", "Waited two weeks for a callback on a new referral"),
    ("access", "Could not get a same-week appointment for an urgent knee"),
    ("communication", "Consult note not received after the visit"),
    ("communication", "Nobody told us the patient was scheduled"),
    ("billing", "Patient billed as out-of-network by mistake"),
    ("courtesy", "Front desk was short with our referral coordinator"),
    ("clinical", "Post-op instructions unclear to the patient's PCP"),
    ("other", "Fax line busy all morning"),
]
RESOLUTIONS = [
    "Added a second scheduler; callbacks now within 1 business day.",
    "Consult notes now faxed the same day by the medical assistant.",
    "Billing corrected and the charge reversed.",
    "Front desk team coached; apology call made.",
    "Second fax line installed.",
]


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=timezone.get_current_timezone())


def _weekday(ctx: DemoContext, day: date) -> date:
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def _office_people(practice: Any) -> tuple[list[Provider], list[Contact]]:
    providers = list(
        Provider.objects.referring()
        .filter(locations__practice=practice)
        .select_related("primary_taxonomy")
        .distinct()
    )
    contacts = list(Contact.objects.filter(practice=practice, is_active=True))
    return providers, contacts


def _people(cache: dict, practice: Any) -> tuple[list[Provider], list[Contact], Location | None]:
    if practice.pk not in cache:
        main = practice.locations.filter(is_active=True).select_related("practice").order_by("pk").first()
        cache[practice.pk] = (*_office_people(practice), main)
    return cache[practice.pk]


def generate(ctx: DemoContext) -> str:
    rng, today = ctx.rng, ctx.today
    users = ctx.data["users"]
    lee, manager, coordinator = users[Role.LIAISON], users[Role.MANAGER], users[Role.COORDINATOR]
    physician_user = users[Role.PHYSICIAN]
    from liaison.accounts.demo import DEMO_PASSWORD

    jordan = accounts.create_user(
        actor=DEMO_ACTOR,
        email=SECOND_LIAISON[0],
        full_name=SECOND_LIAISON[1],
        role=Role.LIAISON,
        password=DEMO_PASSWORD,
        validate=False,
    )
    our_physicians = ctx.data["our_physicians"]
    services.ensure_reference_data()  # normally there from the migration; a flushed database needs it

    # Territories: Franklin County (Columbus) for Lee, the surrounding counties for Jordan.
    counties = Counter(
        f"{loc.county}, {loc.state}" for loc in Location.objects.referring().exclude(county="")
    )
    central = "Franklin County, OH"
    services.save_territory(
        None, actor=DEMO_ACTOR, name="Columbus (Franklin County)", liaison=lee, counties=[central]
    )
    services.save_territory(
        None,
        actor=DEMO_ACTOR,
        name="Suburbs and beyond",
        liaison=jordan,
        counties=sorted(c for c in counties if c != central),
    )

    items = [
        services.save_collateral(None, actor=DEMO_ACTOR, title=t, kind=k, description=d)
        for t, k, d in COLLATERAL
    ]
    tiers = {t.code: t for t in Tier.objects.all()}

    # The pipeline: three practices in four, with a tier and a life story.
    practices = list(ctx.data["practices"])
    rng.shuffle(practices)
    chosen = practices[: round(len(practices) * 0.65)]
    start = today - timedelta(days=365)
    plans: list[dict[str, Any]] = []
    for practice in chosen:
        tier = rng.choices(["A", "B", "C"], weights=[15, 35, 50])[0]
        fate = rng.choices(
            ["referring", "engaged", "contacted", "target", "at_risk", "lapsed"],
            weights=[45, 15, 10, 12, 10, 8],
        )[0]
        added = start + timedelta(days=rng.randrange(0, 60 if fate != "target" else 300))
        account = services.add_to_pipeline(  # its owner comes from the territory
            practice,
            actor=DEMO_ACTOR,
            source=rng.choice(["directory", "directory", "market_data"]),
            tier=tiers[tier] if fate != "target" else None,
            potential=rng.choice(
                ["", "", "Large PCP group, sends knees elsewhere", "New NP joining", "Near our North site"]
            ),
            at=_at(added, 9),
        )
        plans.append({"account": account, "tier": tier, "fate": fate, "added": added})

    # Touches, in date order across all accounts.
    events: list[tuple[datetime, int, str, dict]] = []
    every = {"A": (40, 91), "B": (90, 182), "C": (150, None)}
    for i, plan in enumerate(plans):
        if plan["fate"] == "target":
            continue
        visit_gap, lunch_gap = every[plan["tier"]]
        stop = today if plan["fate"] not in ("lapsed",) else today - timedelta(days=rng.randrange(120, 200))
        day = plan["added"] + timedelta(days=rng.randrange(3, 20))
        n = 0
        while day < stop and (plan["fate"] != "contacted" or n < 2):
            kind = (
                rng.choice([ActivityKind.CALL, ActivityKind.EMAIL])
                if plan["fate"] == "contacted" or (plan["tier"] == "C" and rng.random() < 0.5)
                else rng.choice([ActivityKind.VISIT, ActivityKind.VISIT, ActivityKind.DROP_IN])
            )
            events.append(
                (_at(_weekday(ctx, day), rng.choice([9, 10, 14, 15]), rng.choice([0, 15, 30])), i, kind, {})
            )
            day += timedelta(days=round(visit_gap * rng.uniform(0.7, 1.3)))
            n += 1
        if lunch_gap and plan["fate"] not in ("contacted",):
            day = plan["added"] + timedelta(days=rng.randrange(20, 60))
            while day < stop:
                events.append((_at(_weekday(ctx, day), 12), i, ActivityKind.LUNCH, {}))
                day += timedelta(days=round(lunch_gap * rng.uniform(0.8, 1.15)))
        # What is coming up: a planned visit or lunch in the next two weeks for some.
        if plan["fate"] in ("referring", "engaged", "at_risk") and rng.random() < 0.25:
            kind = ActivityKind.LUNCH if plan["tier"] == "A" and rng.random() < 0.5 else ActivityKind.VISIT
            when = _at(
                _weekday(ctx, today + timedelta(days=rng.randrange(1, 14))),
                12 if kind == ActivityKind.LUNCH else 10,
            )
            events.append((when, i, kind, {"planned": True}))
    # Dinner seminars: physicians of the key accounts, our physicians speaking.
    key_plans = [p for p in plans if p["tier"] == "A" and p["fate"] != "target"]
    for k in range(4):
        events.append(
            (
                _at(_weekday(ctx, start + timedelta(days=70 + 80 * k)), 18, 30),
                -1,
                ActivityKind.EVENT,
                {"seminar": k},
            )
        )
    events.sort(key=lambda e: e[0])

    people_cache: dict[int, tuple[list[Provider], list[Contact]]] = {}
    first_referral_done: set[int] = set()
    counts: Counter[str] = Counter()
    # The daily cadence job, run weekly over the last ten weeks as the history unfolds: its tasks
    # are then closed by the visits and lunches that follow (or left open), as they would have been.
    cadence_day = today - timedelta(days=70)
    for when, i, kind, extra in events:
        while cadence_day <= min(when.date(), today - timedelta(days=1)):
            services.create_due_tasks(actor="cadence job", today=cadence_day)
            cadence_day += timedelta(days=7)
        if i == -1:
            attendees = []
            for p in key_plans:
                providers, _, _ = _people(people_cache, p["account"].practice)
                attendees += [pr for pr in providers if pr.credential in ("MD", "DO")][:2]
            attendees = attendees[: 10 + extra["seminar"]]
            services.log_activity(
                actor=lee,
                account=None,
                kind=ActivityKind.EVENT,
                occurred_at=when,
                liaison=lee,
                our_physicians=rng.sample(our_physicians, 2),
                providers=attendees,
                topics=rng.choice(TOPICS),
                purpose="education",
                cost=Decimal(95 * (len(attendees) + 4)),
                office_head_count=len(attendees) + 4,
                outcome="Dinner seminar with case discussions.",
                duration_minutes=150,
                confirm_over_limit=True,
            )
            counts["event"] += 1
            continue
        plan = plans[i]
        account = plan["account"]  # kept current: the services move its stage on this instance
        liaison = account.owner or lee
        providers, contacts, main_location = _people(people_cache, account.practice)
        staff = [
            c for c in contacts if c.role in (ContactRole.REFERRAL_COORDINATOR, ContactRole.OFFICE_MANAGER)
        ] or contacts
        kwargs: dict[str, Any] = {
            "purpose": rng.choice(["relationship", "relationship", "new_service", "referral_process"]),
            "location": main_location,
        }
        if kind == ActivityKind.LUNCH:
            ours = rng.sample(our_physicians[:3], 1) + (
                [rng.choice(our_physicians[3:])] if rng.random() < 0.5 else []
            )
            theirs = providers
            office = rng.sample(contacts, k=min(len(contacts), rng.randrange(2, 5)))
            heads = len(theirs) + len(office) + rng.randrange(0, 4)
            kwargs.update(
                our_physicians=ours,
                providers=theirs,
                contacts=office,
                cost=Decimal(heads * rng.randrange(14, 22)),
                office_head_count=heads,
                purpose="education",
                topics=rng.choice(TOPICS),
                clinical_questions=rng.choice(QUESTIONS),
                duration_minutes=60,
            )
        elif kind in (ActivityKind.VISIT, ActivityKind.DROP_IN):
            kwargs.update(
                contacts=rng.sample(staff, k=min(len(staff), rng.choice([1, 1, 2]))) if staff else [],
                providers=[rng.choice(providers)] if providers and rng.random() < 0.3 else [],
                duration_minutes=rng.choice([10, 15, 20, 30]),
            )
            if rng.random() < 0.35:
                kwargs["materials"] = {rng.choice(items): rng.choice([1, 2, 5, 10, 25])}
        else:
            kwargs.update(contacts=[rng.choice(staff)] if staff else [])
        if extra.get("planned"):
            kwargs["status"] = ActivityStatus.PLANNED
        else:
            kwargs["outcome"] = rng.choice(OUTCOMES[kind])
            if rng.random() < 0.3:
                step = rng.choice(NEXT_STEPS)
                assignee = (
                    physician_user
                    if our_physicians[0] in kwargs.get("our_physicians", []) and rng.random() < 0.5
                    else coordinator
                    if rng.random() < 0.15
                    else liaison
                )
                kwargs["next_step"] = step
                kwargs["follow_up"] = services.FollowUp(step, (when + timedelta(days=7)).date(), assignee)
        activity = services.log_activity(
            actor=liaison,
            account=account,
            kind=kind,
            occurred_at=when,
            liaison=liaison,
            confirm_over_limit=True,
            **kwargs,
        )
        counts[activity.kind] += 1
        # First referrals arrive a few weeks after the first face-to-face meeting.
        if (
            plan["fate"] in ("referring", "at_risk", "lapsed")
            and account.pk not in first_referral_done
            and activity.is_in_person
            and activity.status == ActivityStatus.COMPLETED
        ):
            first_referral_done.add(account.pk)
            services.record_first_referral(
                account.practice, when=when + timedelta(days=rng.randrange(7, 40)), actor="referrals (demo)"
            )

    # Past follow-ups are mostly done.
    for task in Task.objects.filter(status=TaskStatus.OPEN, due_on__lt=today - timedelta(days=10)):
        if rng.random() < 0.95:
            services.complete_task(task, actor=task.assignee)
            Task.objects.filter(pk=task.pk).update(done_at=_at(task.due_on, 16))  # demo: when it was done

    # A few accounts lost. Those fated to cool off keep referring for now: the referrals demo gives
    # their providers a recent drop, and the analytics step (the real detector) marks them at risk.
    cooling = set()
    for plan in plans:
        account = Account.objects.get(pk=plan["account"].pk)
        if plan["fate"] == "at_risk" and account.stage == Stage.REFERRING:
            cooling.add(account.practice_id)
        elif plan["fate"] == "lapsed" and account.stage in (Stage.REFERRING, Stage.ENGAGED):
            services.change_stage(
                account,
                Stage.LAPSED,
                actor=manager,
                reason="no referral in six months; joined a hospital group",
            )

    due = services.create_due_tasks(actor="cadence job", today=today)
    ctx.data.update(
        outreach_accounts=[p["account"] for p in plans],
        liaisons=[lee, jordan],
        collateral=items,
        cooling_practices=cooling,
    )
    stages = Counter(Account.objects.values_list("stage", flat=True))
    return (
        f"outreach: {len(plans)} accounts ({', '.join(f'{n} {s}' for s, n in sorted(stages.items()))}), "
        f"{sum(counts.values())} activities ({counts['lunch']} lunches, {counts['event']} seminars), "
        f"{Task.objects.count()} tasks ({due['created']} due today by cadence), 2 territories"
    )
