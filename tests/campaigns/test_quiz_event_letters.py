"""Quizzes (the tokenised form, the window, scoring, an auditable draw), event invitations (RSVP,
check-in logged on the account), letters (PDF, logged on the timeline) and the results page."""

import random
import re
from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from liaison.audit.models import AuditEvent
from liaison.campaigns import selectors, services
from liaison.campaigns.mail import recipient_token
from liaison.campaigns.models import (
    Attendance,
    Campaign,
    CampaignKind,
    CampaignStatus,
    QuizRule,
    Recipient,
    RecipientStatus,
)
from liaison.outreach.models import Account, Activity, Attendee
from liaison.referrals import services as referrals
from tests.campaigns.conftest import email_template


def sent(campaign, actor, capture):
    with capture(execute=True):
        services.start_send(campaign, actor=actor)
    campaign.refresh_from_db()
    return {r.email: r for r in Recipient.objects.filter(campaign=campaign)}


def quiz_link(email):
    body = next(m for m in mail.outbox if email in m.to[0]).body
    return re.search(r"https://liaison\.example\.org(/c/q/[^/\s]+/)", body).group(1)


def answer(client, path, picks):
    page = client.get(path)
    questions = [f for f in page.context["form"].fields]
    return client.post(path, {q: str(p) for q, p in zip(questions, picks, strict=True)})


def test_a_recipient_answers_once_through_their_link_and_is_scored(
    world, quiz_campaign, django_capture_on_commit_callbacks
):
    rows = sent(quiz_campaign, world.lee, django_capture_on_commit_callbacks)
    assert set(rows) == {"ralph@oak.example", "rhonda@birch.example"}
    path = quiz_link("ralph@oak.example")
    client = Client()
    page = client.get(path)
    assert page.status_code == 200 and b"Which joint is the largest?" in page.content
    assert client.post(path, {}).context["form"].errors  # every question needs an answer
    done = answer(client, path, [0, 0])
    assert b"You got 2 of 2 right" in done.content
    ralph = rows["ralph@oak.example"]
    assert ralph.quiz_answer.all_correct and ralph.quiz_answer.correct_count == 2
    q_ids = list(quiz_campaign.quiz.questions.values_list("pk", flat=True))
    again = client.post(path, {f"q{q}": "1" for q in q_ids})  # a second answer changes nothing
    assert b"2 of 2" in again.content
    ralph.quiz_answer.refresh_from_db()
    assert ralph.quiz_answer.correct_count == 2
    assert Client().get("/c/q/1.forged/").status_code == 404
    assert Client().get(f"/c/q/{recipient_token(ralph.pk)}x/").status_code == 404


def test_answers_are_accepted_only_inside_the_window(
    world, quiz_campaign, django_capture_on_commit_callbacks
):
    rows = sent(quiz_campaign, world.lee, django_capture_on_commit_callbacks)
    quiz = quiz_campaign.quiz
    questions = list(quiz.questions.all())
    with pytest.raises(ValidationError, match="closed"):
        services.submit_quiz_answer(
            rows["ralph@oak.example"], {q.pk: 0 for q in questions}, at=quiz.closes_at + timedelta(seconds=1)
        )
    services.close_quiz(quiz, actor=world.lee)
    assert Client().get(quiz_link("rhonda@birch.example")).status_code == 410


def _answers(quiz_campaign, rows, when, picks):
    questions = list(quiz_campaign.quiz.questions.all())
    for (email, pick), at in zip(picks.items(), when, strict=True):
        services.submit_quiz_answer(rows[email], {q.pk: pick for q in questions}, at=at)


def test_the_first_all_correct_answer_wins_and_the_draw_is_recorded(
    world, quiz_campaign, django_capture_on_commit_callbacks
):
    rows = sent(quiz_campaign, world.lee, django_capture_on_commit_callbacks)
    now = timezone.now()
    # Rhonda answered first but got one wrong; Ralph was second and all right.
    _answers(
        quiz_campaign,
        rows,
        [now, now + timedelta(minutes=1)],
        {"rhonda@birch.example": 1, "ralph@oak.example": 0},
    )
    quiz = quiz_campaign.quiz
    with pytest.raises(ValidationError, match="still open"):
        services.draw_winner(quiz, actor=world.lee)
    services.close_quiz(quiz, actor=world.lee, at=now + timedelta(minutes=5))
    draw = services.draw_winner(quiz, actor=world.lee, at=now + timedelta(minutes=5))
    assert draw.winner.recipient == rows["ralph@oak.example"] and draw.rule == QuizRule.FIRST
    assert services.verify_draw(draw)
    audit = AuditEvent.objects.get(action="draw")
    assert audit.changes["winner_recipient"] == rows["ralph@oak.example"].pk
    with pytest.raises(ValidationError, match="already"):
        services.draw_winner(quiz, actor=world.lee, at=now + timedelta(minutes=6))


def test_a_random_draw_among_the_all_correct_is_reproducible_from_its_seed(
    world, quiz_campaign, django_capture_on_commit_callbacks
):
    from liaison.campaigns.models import Quiz

    Quiz.objects.filter(campaign=quiz_campaign).update(rule=QuizRule.RANDOM)
    rows = sent(quiz_campaign, world.lee, django_capture_on_commit_callbacks)
    now = timezone.now()
    _answers(quiz_campaign, rows, [now, now], {"rhonda@birch.example": 0, "ralph@oak.example": 0})
    quiz = Quiz.objects.get(campaign=quiz_campaign)
    services.close_quiz(quiz, actor=world.lee)
    draw = services.draw_winner(quiz, actor=world.lee, seed="c0ffee")
    assert len(draw.candidates) == 2 and draw.seed == "c0ffee"
    assert draw.winner_id == random.Random("c0ffee").choice(draw.candidates)
    assert services.verify_draw(draw)
    audit = AuditEvent.objects.get(action="draw")
    assert audit.changes["seed"] == "c0ffee" and audit.changes["candidates"] == draw.candidates


def test_the_liaison_sees_the_winner_on_the_campaign_page(
    world, quiz_campaign, django_capture_on_commit_callbacks
):
    rows = sent(quiz_campaign, world.lee, django_capture_on_commit_callbacks)
    answer(Client(), quiz_link("rhonda@birch.example"), [0, 0])
    client = Client()
    client.force_login(world.lee)
    response = client.post(f"/campaigns/{quiz_campaign.pk}/draw/", {"close_now": "1"}, follow=True)
    assert "The winner is Rhonda Referral" in response.content.decode()
    assert "Rhonda Referral" in response.content.decode().split('id="winner"')[1]
    assert rows


def test_an_invitation_collects_rsvps_and_check_in_logs_event_attendance_on_the_account(
    world, coordinators_north, our_physician, site, django_capture_on_commit_callbacks
):
    template = email_template(
        name="Invite", subject="{{ event.name }}",
        body="Dear {{ recipient.first_name }}, join {{ physician.name }} on {{ event.when }}: {{ links.rsvp }}",
    )  # fmt: skip
    campaign = services.create_campaign(
        actor=world.lee, name="Knee seminar", kind=CampaignKind.EVENT, segment=coordinators_north,
        template=template, featured_physician=our_physician,
    )  # fmt: skip
    starts = timezone.now() + timedelta(hours=2)
    services.save_event(
        campaign, actor=world.lee, kind="seminar", starts_at=starts, site=site, speakers=[our_physician]
    )
    rows = sent(campaign, world.lee, django_capture_on_commit_callbacks)
    body = next(m for m in mail.outbox if "ralph@oak.example" in m.to[0]).body
    assert "Dr. Olivia Bone" in body
    path = re.search(r"https://liaison\.example\.org(/c/r/[^/\s]+/)", body).group(1)
    client = Client()
    assert client.get(path + "?answer=yes").status_code == 200  # opening the link records nothing
    assert not rows["ralph@oak.example"].rsvps.exists()
    assert b"we look forward" in client.post(path, {"answer": "yes"}).content
    client.post(path, {"answer": "no"})
    client.post(path, {"answer": "yes"})  # changed their mind twice: the latest counts
    services.record_rsvp(rows["rhonda@birch.example"], "no")
    results = selectors.results(campaign)
    assert (results["event"]["yes"], results["event"]["no"]) == (1, 1)

    # At the door.
    ralph = rows["ralph@oak.example"]
    attendance = services.check_in(ralph, actor=world.lee)
    activity = attendance.activity
    assert activity.kind == "event" and activity.account == world.oak_account
    assert set(
        Attendee.objects.filter(activity=activity).values_list("contact_id", "provider_id", "is_ours")
    ) == {
        (world.ralph.pk, None, False),
        (None, our_physician.pk, True),
    }
    assert services.check_in(ralph, actor=world.lee) == attendance  # twice is once
    # A colleague from the same office joins the same activity.
    nell = Recipient.objects.create(campaign=campaign, contact=world.nell, practice=world.oak, name="Nell Nurse",
                                    account=world.oak_account, status=RecipientStatus.SENT)  # fmt: skip
    assert services.check_in(nell, actor=world.lee).activity == activity
    assert Attendee.objects.filter(activity=activity, is_ours=False).count() == 2
    # Birch is not in the pipeline yet: attending makes it an account.
    rhonda = services.check_in(rows["rhonda@birch.example"], actor=world.lee)
    assert rhonda.activity.account.practice == world.birch
    assert selectors.results(campaign)["event"]["attended"] == 3
    # A mistaken check-in is undone.
    services.undo_check_in(Attendance.objects.get(recipient=nell), actor=world.lee)
    assert Attendee.objects.filter(activity=activity, is_ours=False).count() == 1


def test_letters_are_one_page_each_and_logged_on_each_accounts_timeline(
    world, our_physician, django_capture_on_commit_callbacks
):
    segment = services.save_segment(None, actor=world.lee, name="Physicians", audiences=["physician"])
    template = services.save_template(
        None, actor="test", name="Intro letter", channel="letter", subject="Introducing {{ physician.name }}",
        body_text="{{ physician.name }} has joined {{ organisation.name }}.\n\nCall {{ liaison.name }}.",
    )  # fmt: skip
    campaign = services.create_campaign(
        actor=world.lee, name="New physician", kind=CampaignKind.LETTER, segment=segment, template=template,
        featured_physician=our_physician,
    )  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        run = services.start_send(campaign, actor=world.lee)
    run.refresh_from_db()
    campaign.refresh_from_db()
    assert run.status == "succeeded" and campaign.status == CampaignStatus.SENT
    rows = list(Recipient.objects.filter(campaign=campaign))
    assert {r.name for r in rows} == {"Frank Family, MD", "Wes Oakley, DO"}  # no email needed for a letter
    assert all(r.status == RecipientStatus.PRINTED and r.activity.kind == "letter" for r in rows)
    assert Activity.objects.get(pk=rows[0].activity_id).account.practice_id == rows[0].practice_id
    pdf = campaign.letters_pdf.open("rb").read()
    assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf)) == 2


def test_letter_templates_cannot_carry_links(world):
    with pytest.raises(ValidationError, match="cannot carry links"):
        services.save_template(
            None, actor="test", name="x", channel="letter", subject="s", body_text="{{ links.quiz }}"
        )


def test_results_compare_referrals_from_the_recipients_offices_before_and_after(
    world, newsletter, site, django_capture_on_commit_callbacks
):
    import datetime as dt

    def referral(days_ago, provider):
        referrals.receive_referral(
            actor="test", patient_first_name="Ann", patient_last_name="Patient", patient_dob=dt.date(1970, 1, 1),
            referring_provider=provider, site=site, received_at=timezone.now() - timedelta(days=days_ago),
        )  # fmt: skip

    for days in (120, 60, 30):  # 100, 40 and 10 days before the campaign started
        referral(days, world.family)
    sent(newsletter, world.lee, django_capture_on_commit_callbacks)
    Campaign.objects.filter(pk=newsletter.pk).update(started_at=timezone.now() - timedelta(days=20))
    newsletter.refresh_from_db()
    referral(10, world.family)
    referral(5, world.wes)  # Oak: one of the recipients' offices too
    effect = selectors.referral_effect(newsletter)
    # 20 days since it started, against the same 20 days before (the one 10 days before it).
    assert (effect.before, effect.after, effect.days_after) == (1, 2, 20)
    # Once 90 days have passed: the 90 days before (two of them), against the 90 after.
    later = selectors.referral_effect(newsletter, now=timezone.now() + timedelta(days=70))
    assert (later.before, later.after, later.days_after) == (2, 2, 90)
    assert effect.offices == 4  # Maple, Oak, Birch, Lakeside received it


def test_a_quiz_cannot_be_sent_without_questions_or_its_link(world, coordinators_north):
    template = email_template(name="No link", body="Hello")
    campaign = services.create_campaign(
        actor=world.lee, name="Q", kind=CampaignKind.QUIZ, segment=coordinators_north, template=template
    )
    found = services.problems(campaign)
    assert "Write the quiz's questions." in found and any("links.quiz" in p for p in found)
    with pytest.raises(ValidationError):
        services.prepare_send(campaign, actor=world.lee)
    assert not Account.objects.filter(practice=world.birch).exists()
