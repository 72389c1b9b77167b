"""Demo campaigns: a newsletter sent six weeks ago (a few bounces, an unsubscribe), last month's
quiz with its answers and winner, and a seminar in twelve days with its RSVPs.

They go through the same services as real use; the messages are handed to Django's in-memory
(locmem) email backend, so the demo sends nothing, then the times are moved into the past."""

from __future__ import annotations

from datetime import timedelta

from django.core.mail import get_connection
from django.utils import timezone

from liaison.accounts.models import Role
from liaison.campaigns import services
from liaison.campaigns.models import (
    Audience,
    Campaign,
    CampaignKind,
    DeliveryAttempt,
    Quiz,
    QuizRule,
    Recipient,
    RecipientStatus,
    RsvpAnswer,
    Template,
)
from liaison.core.demo import DemoContext
from liaison.outreach.models import Territory

NEWSLETTER = (
    "Dear {{ recipient.salutation }},\n\n"
    "Three things from {{ organisation.name }} this quarter:\n\n"
    "- Same-week appointments for new knee and hip patients at all three sites.\n"
    "- Our North site now has an open MRI on Saturdays.\n"
    "- A direct line for referral coordinators: ask {{ liaison.name }} for it.\n\n"
    "Thank you for the patients you trust us with.\n\n"
    "{{ liaison.name }} ({{ liaison.email }})\nPhysician relations, {{ organisation.name }}"
)
QUESTIONS = [
    services.QuestionIn("Which ligament is most often torn in a twisting knee injury?",
                        ["Anterior cruciate ligament", "Medial collateral ligament", "Patellar ligament"], 0),
    services.QuestionIn("How soon after a hip fracture should surgery ideally happen?",
                        ["Within 48 hours", "Within two weeks", "After six weeks of rest"], 0),
    services.QuestionIn("Which imaging comes first for suspected knee osteoarthritis?",
                        ["Weight-bearing X-ray", "MRI", "CT scan"], 0),
]  # fmt: skip


def _deliver(campaign: Campaign, *, sent_at: object) -> list[Recipient]:
    """Hand the queued messages to the in-memory backend, then date them `sent_at`."""
    services.deliver_now(campaign, connection=get_connection("django.core.mail.backends.locmem.EmailBackend"))
    rows = list(Recipient.objects.filter(campaign=campaign).order_by("pk"))
    for i, row in enumerate(rows):
        at = sent_at + timedelta(seconds=2 * i)
        Recipient.objects.filter(pk=row.pk).update(sent_at=at, claimed_at=at)
        DeliveryAttempt.objects.filter(recipient=row).update(at=at)
    Campaign.objects.filter(pk=campaign.pk).update(finished_at=sent_at + timedelta(seconds=2 * len(rows)))
    return rows


def generate(ctx: DemoContext) -> str:
    rng, now = ctx.rng, timezone.now()
    users = ctx.data["users"]
    lee, manager = users[Role.LIAISON], users[Role.MANAGER]
    our_physicians = ctx.data["our_physicians"]
    services.ensure_starter_templates()

    # A newsletter to the office managers and referral coordinators of every account, 45 days ago.
    staff = services.save_segment(
        None,
        actor=manager,
        name="Office managers and coordinators (accounts)",
        description="the people who choose where referrals go",
        audiences=[Audience.OFFICE_MANAGER, Audience.REFERRAL_COORDINATOR],
        stages=["contacted", "engaged", "referring", "at_risk"],
    )
    template = services.save_template(
        None, actor=manager, name="Quarterly newsletter", subject="News from {{ organisation.name }}",
        body_text=NEWSLETTER,
    )  # fmt: skip
    newsletter = services.create_campaign(
        actor=manager,
        name="Quarterly newsletter",
        kind=CampaignKind.NEWSLETTER,
        segment=staff,
        template=template,
    )
    sent_at = now - timedelta(days=45)
    services.prepare_send(newsletter, actor=manager, now=sent_at)
    rows = _deliver(newsletter, sent_at=sent_at)
    for row in rng.sample(rows, min(2, len(rows))):
        services.record_bounce(row.email, actor="bounce processing", message_id=row.message_id,
                               detail="5.1.1 mailbox unavailable")  # fmt: skip
    delivered = list(
        Recipient.objects.filter(campaign=newsletter, status=RecipientStatus.SENT).order_by("pk")
    )
    newsletter_size = len(rows)
    if delivered:
        services.unsubscribe(rng.choice(delivered), how="one-click")

    # Last month's quiz to the referral coordinators of Lee's territory.
    territory = Territory.objects.filter(liaison=lee).order_by("pk").first()
    coordinators = services.save_segment(
        None,
        actor=lee,
        name=f"Referral coordinators, {territory.name}" if territory else "Referral coordinators",
        audiences=[Audience.REFERRAL_COORDINATOR],
        territories=[territory.pk] if territory else [],
    )
    quiz_campaign = services.create_campaign(
        actor=lee, name="Knee and hip quiz", kind=CampaignKind.QUIZ, segment=coordinators,
        template=Template.objects.get(name="Quiz of the month"),
    )  # fmt: skip
    opened = now - timedelta(days=24)
    services.save_quiz(
        quiz_campaign, actor=lee, closes_at=now + timedelta(days=1), rule=QuizRule.RANDOM,
        prize="lunch for the office", questions=QUESTIONS,
    )  # fmt: skip
    quiz = Quiz.objects.get(campaign=quiz_campaign)
    closes = now - timedelta(days=10)
    services.close_quiz(quiz, actor=lee, at=closes)  # it ran for two weeks, from 24 days ago
    services.prepare_send(quiz_campaign, actor=lee, now=opened)
    rows = _deliver(quiz_campaign, sent_at=opened)
    questions = list(quiz.questions.all())
    answered = rng.sample(rows, round(len(rows) * 0.6))
    for row in answered:
        picks = {
            q.pk: (q.correct if rng.random() < 0.8 else (q.correct + 1) % len(q.choices)) for q in questions
        }
        at = opened + timedelta(hours=rng.randrange(1, 13 * 24))
        services.submit_quiz_answer(row, picks, at=at)
    services.draw_winner(quiz, actor=lee, seed=f"{rng.getrandbits(48):012x}", at=closes + timedelta(hours=20))

    # A seminar in twelve days: the physicians and coordinators of the tier A and B accounts.
    key_people = services.save_segment(
        None,
        actor=manager,
        name="Physicians and coordinators, tiers A and B",
        audiences=[Audience.PHYSICIAN, Audience.REFERRAL_COORDINATOR, Audience.OFFICE_MANAGER],
        tiers=["A", "B"],
    )
    seminar = services.create_campaign(
        actor=manager, name="Evening seminar: the painful knee in primary care", kind=CampaignKind.EVENT,
        segment=key_people, template=Template.objects.get(name="Seminar invitation"),
        featured_physician=our_physicians[0],
    )  # fmt: skip
    starts = timezone.localtime(now + timedelta(days=12)).replace(hour=18, minute=30, second=0, microsecond=0)
    services.save_event(
        seminar, actor=manager, kind="seminar", starts_at=starts, ends_at=starts + timedelta(hours=2),
        site=ctx.data["sites"][0], venue="Conference room, 2nd floor", capacity=40, speakers=our_physicians[:2],
    )  # fmt: skip
    invited = now - timedelta(days=5)
    services.prepare_send(seminar, actor=manager, now=invited)
    rows = _deliver(seminar, sent_at=invited)
    yes = no = 0
    for row in rows:
        draw = rng.random()
        if draw < 0.45:
            answer = RsvpAnswer.YES if draw < 0.32 else RsvpAnswer.NO
            services.record_rsvp(row, answer, at=invited + timedelta(hours=rng.randrange(2, 110)))
            yes, no = yes + (answer == RsvpAnswer.YES), no + (answer == RsvpAnswer.NO)

    draw = quiz.draw
    return (
        f"campaigns: a newsletter to {newsletter_size} office managers and coordinators (2 bounced, "
        f"1 unsubscribed), a quiz with {len(answered)} answers (winner: "
        f"{draw.winner.recipient.name if draw.winner else 'none'}), a seminar on {starts:%b %d} "
        f"({yes} yes, {no} no)"
    )
