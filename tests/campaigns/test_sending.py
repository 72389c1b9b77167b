"""Sending through a real SMTP server on loopback: what arrives, unsubscribes, bounces, retries,
and what happens when the sender dies mid-send."""

import re
import time
from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from liaison.audit.models import AuditEvent
from liaison.campaigns import sending, services
from liaison.campaigns.mail import recipient_pk
from liaison.campaigns.models import (
    AttemptOutcome,
    Campaign,
    CampaignKind,
    CampaignStatus,
    DeliveryAttempt,
    Recipient,
    RecipientStatus,
    Suppression,
    SuppressionReason,
)
from liaison.core.models import JobRun
from liaison.directory.models import Contact
from liaison.referrals import services as referrals
from tests.campaigns.conftest import email_template

UNSUB = re.compile(r"https://liaison\.example\.org/c/u/([^/\s\"]+)/")


def send(campaign, actor, capture):
    with capture(execute=True):
        run = services.start_send(campaign, actor=actor)
    run.refresh_from_db()
    campaign.refresh_from_db()
    return run


def test_each_recipient_gets_one_message_with_rfc8058_headers_merge_fields_and_footer(
    world, newsletter, smtp, django_capture_on_commit_callbacks
):
    run = send(newsletter, world.lee, django_capture_on_commit_callbacks)
    assert run.status == "succeeded" and run.progress_done == run.progress_total == 8
    assert newsletter.status == CampaignStatus.SENT
    # Nora has no email, Nina no consent, Dr Oakley no email: 8 of 11 people.
    assert sorted(a for m in smtp.messages for a in m.rcpt_tos) == sorted(
        r.email for r in Recipient.objects.filter(campaign=newsletter)
    )
    assert len(smtp.messages) == 8
    [rita] = smtp.to("rita@maple.example")
    msg = rita.message
    assert msg["Subject"] == "News for Maple Family Medicine"
    assert msg["From"] == "Test Orthopaedics <relations@ortho.example>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    header_link = UNSUB.search(msg["List-Unsubscribe"]).group(0)
    assert msg["List-Unsubscribe"].strip() == f"<{header_link}>"
    text, html = rita.part("plain"), rita.part("html")
    assert "Dear Rita at Maple Family Medicine" in text and "Jordan Liaison" in text  # the office's liaison
    assert header_link in text and header_link in html  # the footer's link is the header's
    assert "1 Main St, Columbus, OH 43215" in text and "Test Orthopaedics" in text  # CAN-SPAM footer
    row = Recipient.objects.get(campaign=newsletter, email="rita@maple.example")
    assert recipient_pk(UNSUB.search(text).group(1)) == row.pk
    assert msg["Message-ID"] == row.message_id and row.status == RecipientStatus.SENT
    [frank] = smtp.to("frank@maple.example")
    assert "Dear Dr. Family at Maple Family Medicine" in frank.part("plain")
    assert AuditEvent.objects.filter(action="send", object_id=str(newsletter.pk)).exists()


def test_no_patient_data_reaches_an_email_even_from_an_office_that_refers(
    world, newsletter, smtp, site, django_capture_on_commit_callbacks
):
    referrals.receive_referral(
        actor="test",
        patient_first_name="Zelda",
        patient_last_name="Quackenbush",
        patient_dob=__import__("datetime").date(1961, 4, 2),
        reason="knee osteoarthritis",
        referring_provider=world.family,
        referring_location=world.family.locations.first(),
        site=site,
    )
    send(newsletter, world.lee, django_capture_on_commit_callbacks)
    assert smtp.messages
    for m in smtp.messages:
        for secret in (b"Zelda", b"Quackenbush", b"1961-04-02", b"osteoarthritis"):
            assert secret not in m.raw


def test_an_unsubscribed_address_is_never_sent_to_again_in_any_campaign(
    world, newsletter, segment_all, smtp, django_capture_on_commit_callbacks
):
    send(newsletter, world.lee, django_capture_on_commit_callbacks)
    token = UNSUB.search(smtp.to("olga@maple.example")[0].part("plain")).group(1)
    client = Client()
    page = client.get(f"/c/u/{token}/")  # a link checker opening it unsubscribes nobody
    assert page.status_code == 200 and not Suppression.objects.exists()
    # RFC 8058: the mail client POSTs the body, without a session or CSRF token.
    response = Client(enforce_csrf_checks=True).post(f"/c/u/{token}/", {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    suppression = Suppression.objects.get(email="olga@maple.example")
    assert suppression.reason == SuppressionReason.UNSUBSCRIBED and suppression.campaign == newsletter
    assert not Contact.objects.get(pk=world.olga.pk).email_consent  # the directory follows
    assert "unsubscribed" in client.get(f"/c/u/{token}/").content.decode()

    # Consent ticked again by hand in the directory: the suppression list still wins.
    Contact.objects.filter(pk=world.olga.pk).update(email_consent=True)
    smtp.messages.clear()
    second = services.create_campaign(
        actor=world.jordan,
        name="Summer",
        kind=CampaignKind.NEWSLETTER,
        segment=segment_all,
        template=newsletter.template,
    )
    send(second, world.jordan, django_capture_on_commit_callbacks)
    assert len(smtp.messages) == 7 and not smtp.to("olga@maple.example")
    assert second.audience["suppressed"] == 1


def test_an_unsubscribe_during_a_send_is_honoured_before_the_next_message(
    world, newsletter, smtp, django_capture_on_commit_callbacks
):
    services.prepare_send(newsletter, actor=world.lee)
    rows = list(Recipient.objects.filter(campaign=newsletter).order_by("pk"))
    # Someone from an earlier campaign unsubscribes while this one is queued.
    services.unsubscribe(rows[-1], how="link")
    # ... and someone's consent is withdrawn in the directory.
    services._withdraw_consent(rows[-2].email, actor="test")
    sending.deliver(newsletter.pk, rate=0)
    assert not smtp.to(rows[-1].email) and not smtp.to(rows[-2].email)
    rows[-1].refresh_from_db()
    rows[-2].refresh_from_db()
    assert rows[-1].status == rows[-2].status == RecipientStatus.SKIPPED
    assert "unsubscribed" in rows[-1].reason and "consent" in rows[-2].reason
    assert len(smtp.messages) == len(rows) - 2


def test_an_address_refused_by_the_server_is_flagged_bounced_and_skipped_later(
    world, newsletter, segment_all, smtp, django_capture_on_commit_callbacks
):
    smtp.refuse["bob@birch.example"] = ["550 5.1.1 <bob@birch.example>: no such user"]
    send(newsletter, world.lee, django_capture_on_commit_callbacks)
    bob = Recipient.objects.get(campaign=newsletter, email="bob@birch.example")
    assert bob.status == RecipientStatus.BOUNCED and "no such user" in bob.reason
    assert Suppression.objects.get(email="bob@birch.example").reason == SuppressionReason.BOUNCED
    assert DeliveryAttempt.objects.get(recipient=bob).smtp_code == 550
    assert len(smtp.messages) == 7
    second = services.create_campaign(
        actor=world.lee,
        name="Again",
        kind=CampaignKind.NEWSLETTER,
        segment=segment_all,
        template=newsletter.template,
    )
    assert services.prepare_send(second, actor=world.lee).suppressed == 1


DSN = """From: Mail Delivery System <MAILER-DAEMON@mx.birch.example>
To: relations@ortho.example
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

The mail system could not deliver your message.
--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.birch.example

Final-Recipient: rfc822; {rcpt}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 mailbox unavailable

--B
Content-Type: text/rfc822-headers

Message-ID: {message_id}
Subject: News for Birch Internal Medicine

--B--
"""


def test_a_bounce_report_read_by_the_command_flags_the_address(
    world, newsletter, smtp, tmp_path, django_capture_on_commit_callbacks
):
    send(newsletter, world.lee, django_capture_on_commit_callbacks)
    rhonda = Recipient.objects.get(campaign=newsletter, email="rhonda@birch.example")
    (tmp_path / "bounce.eml").write_text(
        DSN.format(rcpt="rhonda@birch.example", message_id=rhonda.message_id)
    )
    delayed = DSN.format(rcpt="bob@birch.example", message_id="<x@y>").replace("failed", "delayed")
    (tmp_path / "delayed.eml").write_text(delayed.replace("Status: 5.1.1", "Status: 4.4.1"))
    call_command("campaigns", "bounces", str(tmp_path))
    rhonda.refresh_from_db()
    assert rhonda.status == RecipientStatus.BOUNCED and "5.1.1" in rhonda.reason
    assert list(Suppression.objects.values_list("email", "reason")) == [("rhonda@birch.example", "bounced")]
    page = world.lee  # the results show it
    client = Client()
    client.force_login(page)
    assert client.get(f"/campaigns/{newsletter.pk}/").context["results"]["bounced"] == 1


def test_temporary_failures_are_retried_with_backoff_then_sent(
    world, newsletter, smtp, settings, django_capture_on_commit_callbacks
):
    smtp.refuse["ralph@oak.example"] = ["451 4.3.0 try again later", "421 4.7.0 busy"]
    send(newsletter, world.lee, django_capture_on_commit_callbacks)
    ralph = Recipient.objects.get(campaign=newsletter, email="ralph@oak.example")
    assert ralph.status == RecipientStatus.SENT and ralph.attempts == 3
    outcomes = list(DeliveryAttempt.objects.filter(recipient=ralph).values_list("outcome", "smtp_code"))
    assert outcomes == [("temporary", 451), ("temporary", 421), ("sent", None)]
    assert len(smtp.to("ralph@oak.example")) == 1
    assert sending.backoff(1) < sending.backoff(2) < sending.backoff(3)


def test_it_gives_up_after_the_last_attempt_and_says_why(
    world, newsletter, smtp, settings, django_capture_on_commit_callbacks
):
    settings.LIAISON_CAMPAIGN_MAX_ATTEMPTS = 2
    smtp.refuse["ralph@oak.example"] = ["451 4.3.0 try again later"] * 5
    send(newsletter, world.lee, django_capture_on_commit_callbacks)
    ralph = Recipient.objects.get(campaign=newsletter, email="ralph@oak.example")
    assert ralph.status == RecipientStatus.FAILED and ralph.reason.startswith("Gave up after 2")
    assert newsletter.status == CampaignStatus.SENT


def test_a_long_backoff_ends_the_run_and_the_resume_job_finishes_the_send(
    world, newsletter, smtp, settings, django_capture_on_commit_callbacks
):
    settings.LIAISON_CAMPAIGN_RETRY_SECONDS = 600
    smtp.refuse["ralph@oak.example"] = ["451 4.3.0 try again later"]
    run = send(newsletter, world.lee, django_capture_on_commit_callbacks)
    assert run.status == "running" and "next try" in run.message
    assert newsletter.status == CampaignStatus.SENDING and newsletter.retry_at is not None
    assert services.resume_sends() == []  # not yet due
    Campaign.objects.filter(pk=newsletter.pk).update(retry_at=timezone.now() - timedelta(seconds=1))
    Recipient.objects.filter(campaign=newsletter).update(next_attempt_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.resume_sends() == [newsletter.pk]
    run.refresh_from_db()
    assert run.status == "succeeded" and len(smtp.to("ralph@oak.example")) == 1


def test_the_send_is_paced_by_the_rate_limit(world, newsletter, smtp):
    services.prepare_send(newsletter, actor=world.lee)
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        time.sleep(seconds)

    started = time.monotonic()
    sending.deliver(newsletter.pk, rate=40, sleep=sleep)
    # 8 messages at 40 per second: 7 gaps of 25 ms at least.
    assert time.monotonic() - started >= 7 / 40
    assert sum(slept) <= 7 / 40 + 0.01
    assert len(smtp.messages) == 8


def test_a_sender_killed_after_the_server_accepted_leaves_the_message_uncertain_never_resent(
    world, newsletter, smtp, monkeypatch
):
    """The crash between "250 OK" and the row marked sent: at most once, never twice."""
    services.prepare_send(newsletter, actor=world.lee)
    real = sending.record_outcome
    calls = {"n": 0}

    class Killed(BaseException):
        pass

    def dies_on_the_fourth(row, token, outcome, **kw):
        calls["n"] += 1
        if calls["n"] == 4:
            raise Killed  # SIGKILL: nothing after this line runs, no exception handler either
        return real(row, token, outcome, **kw)

    monkeypatch.setattr(sending, "record_outcome", dies_on_the_fourth)
    with pytest.raises(Killed):
        sending.deliver(newsletter.pk, rate=0)
    assert len(smtp.messages) == 4  # the fourth was accepted by the server
    fourth = Recipient.objects.filter(campaign=newsletter).order_by("pk")[3]
    assert fourth.status == RecipientStatus.SENDING
    monkeypatch.setattr(sending, "record_outcome", real)
    # A new sender takes over once the dead one's lease has run out.
    Campaign.objects.filter(pk=newsletter.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    result = sending.deliver(newsletter.pk, rate=0)
    assert result.state == "finished"
    fourth.refresh_from_db()
    assert fourth.status == RecipientStatus.UNCERTAIN and "may or may not" in fourth.reason
    per_address = {}
    for m in smtp.messages:
        for a in m.rcpt_tos:
            per_address[a] = per_address.get(a, 0) + 1
    assert len(per_address) == 8 and set(per_address.values()) == {1}  # nobody got it twice


def test_a_sender_killed_before_the_server_answered_loses_nothing_but_that_one_is_uncertain(
    world, newsletter, smtp, monkeypatch
):
    services.prepare_send(newsletter, actor=world.lee)
    rows = list(Recipient.objects.filter(campaign=newsletter).order_by("pk"))
    # The sender claimed the 3rd and died before its SMTP transaction ended.
    for r in rows[:2]:
        Recipient.objects.filter(pk=r.pk).update(status=RecipientStatus.SENT, sent_at=timezone.now())
    Recipient.objects.filter(pk=rows[2].pk).update(status=RecipientStatus.SENDING, claimed_by="dead")
    Campaign.objects.filter(pk=newsletter.pk).update(
        sender_token="dead", lease_until=timezone.now() - timedelta(seconds=1)
    )
    sending.deliver(newsletter.pk, rate=0)
    rows[2].refresh_from_db()
    assert rows[2].status == RecipientStatus.UNCERTAIN
    assert len(smtp.messages) == 5  # the 5 never claimed; the uncertain one is not sent by itself
    # A person chooses to send the uncertain one again: same Message-ID, so a copy can be dropped.
    with pytest.raises(Exception, match="Wait until"):
        Campaign.objects.filter(pk=newsletter.pk).update(status=CampaignStatus.SENDING)
        newsletter.refresh_from_db()
        services.resend_uncertain(newsletter, actor=world.lee)
    Campaign.objects.filter(pk=newsletter.pk).update(status=CampaignStatus.SENT)
    newsletter.refresh_from_db()
    services.resend_uncertain(newsletter, actor=world.lee)
    sending.deliver(newsletter.pk, rate=0)
    [again] = smtp.to(rows[2].email)
    rows[2].refresh_from_db()
    assert rows[2].status == RecipientStatus.SENT and again.message["Message-ID"] == rows[2].message_id


def test_only_one_sender_works_a_campaign_at_a_time(world, newsletter, smtp):
    services.prepare_send(newsletter, actor=world.lee)
    # The queued job's lease is reserved: the resume job does not start a second sender...
    assert services.resume_sends() == []
    # ... and the first sender to come takes it; then nobody else can.
    assert sending.take_lease(newsletter.pk, "a" * 32)
    assert not sending.take_lease(newsletter.pk, "c" * 32)
    assert sending.deliver(newsletter.pk, rate=0).state == "busy"
    assert not smtp.messages
    assert not sending.renew_lease(newsletter.pk, "b" * 32)
    assert sending.renew_lease(newsletter.pk, "a" * 32)


def test_stopping_a_send_leaves_the_rest_unsent(world, newsletter, smtp):
    services.prepare_send(newsletter, actor=world.lee)
    n = services.stop_send(newsletter, actor=world.lee)
    assert n == 8
    Campaign.objects.filter(pk=newsletter.pk).update(lease_until=None)
    assert sending.deliver(newsletter.pk, rate=0).state == "busy"  # no longer sending
    assert not smtp.messages
    assert set(Recipient.objects.values_list("status", flat=True)) == {RecipientStatus.SKIPPED}


def test_an_unreachable_mail_server_pauses_the_campaign_without_using_attempts(world, newsletter, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # nothing listens on the discard port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    services.prepare_send(newsletter, actor=world.lee)
    Campaign.objects.filter(pk=newsletter.pk).update(lease_until=None)
    result = sending.deliver(newsletter.pk, rate=0)
    assert result.state == "unreachable" and result.resume_at is not None
    assert set(Recipient.objects.values_list("status", "attempts")) == {(RecipientStatus.QUEUED, 0)}
    newsletter.refresh_from_db()
    assert newsletter.retry_at is not None and newsletter.sender_token == ""


def test_classifying_the_servers_answers():
    import smtplib

    assert sending.classify(smtplib.SMTPRecipientsRefused({"a@b": (451, b"later")})).kind == "temporary"
    assert sending.classify(smtplib.SMTPRecipientsRefused({"a@b": (550, b"no")})).kind == "bounced"
    assert sending.classify(smtplib.SMTPDataError(554, b"spam")).kind == "failed"
    assert sending.classify(smtplib.SMTPDataError(452, b"full")).kind == "temporary"
    assert sending.classify(smtplib.SMTPServerDisconnected("gone")).kind == "uncertain"
    assert sending.classify(ConnectionResetError()).kind == "uncertain"
    assert sending.classify(KeyError("x")).kind == AttemptOutcome.FAILED


def test_tracking_is_off_by_default_and_when_on_counts_opens_and_clicks(
    world, segment_all, settings, django_capture_on_commit_callbacks
):
    template = email_template(
        body_html='<p>Hi {{ recipient.first_name }}, see <a href="https://ortho.example/knee">our knee clinic</a>.</p>'
    )
    plain = services.create_campaign(
        actor=world.lee, name="Plain", kind="newsletter", segment=segment_all, template=template
    )
    send(plain, world.lee, django_capture_on_commit_callbacks)
    assert all(
        "/c/o/" not in m.alternatives[0][0] and "/c/l/" not in m.alternatives[0][0] for m in mail.outbox
    )
    assert 'href="https://ortho.example/knee"' in mail.outbox[0].alternatives[0][0]

    settings.LIAISON_CAMPAIGN_TRACKING = True
    mail.outbox.clear()
    tracked = services.create_campaign(
        actor=world.lee, name="Tracked", kind="newsletter", segment=segment_all, template=template
    )
    send(tracked, world.lee, django_capture_on_commit_callbacks)
    html = next(m for m in mail.outbox if m.to[0].endswith("<rita@maple.example>")).alternatives[0][0]
    click = re.search(r'href="https://liaison\.example\.org(/c/l/[^"]+)"', html).group(1)
    pixel = re.search(r'src="https://liaison\.example\.org(/c/o/[^"]+)"', html).group(1)
    assert Client().get(pixel)["Content-Type"] == "image/gif"
    response = Client().get(click)
    assert response.status_code == 302 and response["Location"] == "https://ortho.example/knee"
    rita = Recipient.objects.get(campaign=tracked, email="rita@maple.example")
    assert rita.opened_at and rita.clicked_at
    assert Client().get(click.replace("/0/", "/7/")).status_code == 404  # no open redirect


def test_the_job_page_shows_progress_to_whoever_started_it(
    world, newsletter, smtp, django_capture_on_commit_callbacks
):
    run = send(newsletter, world.lee, django_capture_on_commit_callbacks)
    client = Client()
    client.force_login(world.lee)
    page = client.get(f"/jobs/{run.pk}/").content.decode()
    assert "Succeeded" in page and "8 sent" in page
    assert JobRun.objects.get(pk=run.pk).result == {"sent": 8}


ARF = """From: feedback@isp.example
To: relations@ortho.example
Subject: FW: abuse report
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="F"

--F
Content-Type: text/plain

This is an email abuse report.
--F
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ISP-FBL/1.0
Version: 1
Original-Rcpt-To: <lana@lake.example>

--F
Content-Type: text/rfc822-headers

Message-ID: <c9.r9.x@ortho.example>
To: lana@lake.example

--F--
"""


def test_bounces_are_read_from_mbox_files_and_stdin_and_complaints_are_flagged(world, tmp_path, monkeypatch):
    import io
    import sys

    from liaison.campaigns import bounces

    mbox = tmp_path / "bounces.mbox"
    dsn = DSN.format(rcpt="gone@birch.example", message_id="<nowhere@x>")
    mbox.write_text(
        "From MAILER-DAEMON Mon Nov 23 10:00:00 2026\n" + dsn + "\nFrom x Mon Nov 23 10:00:00 2026\n" + ARF
    )
    reports = [r for raw in bounces.read_messages([str(mbox)]) for r in bounces.parse(raw)]
    assert [(r.email, r.complaint) for r in reports] == [
        ("gone@birch.example", False),
        ("lana@lake.example", True),
    ]
    assert bounces.parse(b"Subject: hello\n\nnot a report") == []

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(ARF.encode())))
    out = io.StringIO()
    call_command("campaigns", "bounces", "-", stdout=out)
    assert "1 address(es) flagged (1 complaint(s))" in out.getvalue()
    assert Suppression.objects.get(email="lana@lake.example").reason == SuppressionReason.COMPLAINT


def test_a_resumed_send_carries_on_the_same_job_page_without_going_back_to_zero(
    world, newsletter, smtp, django_capture_on_commit_callbacks
):
    from liaison.campaigns.tasks import CampaignProgress

    services.prepare_send(newsletter, actor=world.lee)
    run = JobRun.objects.create(kind="campaign", label="x", progress_done=0)
    Campaign.objects.filter(pk=newsletter.pk).update(job_run=run)
    rows = list(Recipient.objects.filter(campaign=newsletter).order_by("pk"))
    for r in rows[:3]:  # an earlier run sent three, then its worker died
        Recipient.objects.filter(pk=r.pk).update(status=RecipientStatus.SENT)
    JobRun.objects.filter(pk=run.pk).update(progress_done=3, progress_total=8)
    progress = CampaignProgress(run)
    progress.start(8, "sending")
    assert JobRun.objects.get(pk=run.pk).progress_done == 3  # the page does not flash back to 0
    Campaign.objects.filter(pk=newsletter.pk).update(lease_until=None)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.resume_sends() == [newsletter.pk]
    run.refresh_from_db()
    assert (run.status, run.progress_done, run.progress_total) == ("succeeded", 8, 8)
    assert len(smtp.messages) == 5
