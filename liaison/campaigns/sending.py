"""The sender: hands a campaign's queued recipients to Django's email backend, one at a time.

Guarantee: **at most once per recipient.** Before talking to the mail server the sender claims
the recipient's row with a conditional UPDATE (`status='queued' -> 'sending'`, its own token in
`claimed_by`) that commits on its own; only the sender whose UPDATE changed the row sends. After
the server answers, the row becomes sent / bounced / failed, or goes back to queued with a later
`next_attempt_at` for a temporary (4xx) failure. A sender that dies (SIGKILL, power cut) between
its claim and that last write leaves the row in `sending`: the next sender marks it `uncertain`
and never sends it again by itself, because the mail server may already have accepted it (the
crash may have come after "250 OK" and before the row was marked). So a crash costs at most one
uncertain recipient per sender; the campaign page lists them and a person may choose to send them
again ("Send the uncertain ones again", same Message-ID so receiving systems can drop a copy).
An error whose outcome is unknown (the connection dropped during the transaction) is `uncertain`
for the same reason.

One sender per campaign: a lease on the campaign row (`sender_token`, `lease_until`), taken and
renewed with conditional UPDATEs, so it works the same on SQLite and PostgreSQL. A sender that
loses its lease (stopped by a person, or stalled past the lease) stops before the next message.
Each message is claimed just before it is sent: an address unsubscribed or bounced a second ago,
in any campaign, or whose consent was withdrawn in the directory, is skipped.
"""

from __future__ import annotations

import logging
import secrets
import smtplib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import get_connection
from django.db import connection, transaction
from django.db.models import Count, Min, Q
from django.utils import timezone

from liaison.campaigns.mail import Content, build_message
from liaison.campaigns.models import (
    AttemptOutcome,
    Campaign,
    CampaignStatus,
    DeliveryAttempt,
    Recipient,
    RecipientStatus,
    Suppression,
    SuppressionReason,
)
from liaison.core.jobs import Progress
from liaison.directory.models import Contact, Provider

logger = logging.getLogger(__name__)
BATCH = 200
RENEW_EVERY = 2.0  # at most this many seconds between lease renewals (and a third of the lease)
IDLE_RECONNECT = 10.0  # an SMTP connection idle this long is reopened (servers drop idle clients)
SHORT_WAIT = 30.0  # a retry due within this many seconds is waited for; later ones end this run


@dataclass
class Outcome:
    kind: str  # an AttemptOutcome value
    code: int | None = None
    detail: str = ""


@dataclass
class RunResult:
    state: str  # "finished", "waiting", "busy", "stopped", "unreachable"
    sent: int = 0
    processed: int = 0
    resume_at: datetime | None = None


def _now() -> datetime:
    return timezone.now()


# Lease ------------------------------------------------------------------------------------------


def take_lease(campaign_id: int, token: str, *, now: datetime | None = None) -> bool:
    now = now or _now()
    taken = (
        Campaign.objects.filter(pk=campaign_id, status=CampaignStatus.SENDING)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now) | Q(sender_token=""))
        .filter(Q(retry_at__isnull=True) | Q(retry_at__lte=now))
        .update(
            sender_token=token,
            lease_until=now + timedelta(seconds=settings.LIAISON_CAMPAIGN_LEASE_SECONDS),
            retry_at=None,
        )
    )
    return taken == 1


def renew_lease(campaign_id: int, token: str) -> bool:
    """False when the lease is gone: the campaign was stopped or another sender took over."""
    return (
        Campaign.objects.filter(pk=campaign_id, sender_token=token, status=CampaignStatus.SENDING).update(
            lease_until=_now() + timedelta(seconds=settings.LIAISON_CAMPAIGN_LEASE_SECONDS)
        )
        == 1
    )


def release_lease(campaign_id: int, token: str, *, retry_at: datetime | None = None) -> None:
    Campaign.objects.filter(pk=campaign_id, sender_token=token).update(
        sender_token="", lease_until=None, retry_at=retry_at
    )


def mark_interrupted(campaign_id: int, token: str) -> int:
    """Rows left in `sending` by a sender that is gone (we hold the lease now) become uncertain."""
    stale = list(
        Recipient.objects.filter(campaign_id=campaign_id, status=RecipientStatus.SENDING)
        .exclude(claimed_by=token)
        .values_list("pk", flat=True)
    )
    if not stale:
        return 0
    with transaction.atomic():
        n = Recipient.objects.filter(pk__in=stale, status=RecipientStatus.SENDING).update(
            status=RecipientStatus.UNCERTAIN,
            reason="The sender stopped during this message: it may or may not have been delivered.",
        )
        DeliveryAttempt.objects.bulk_create(
            DeliveryAttempt(
                recipient_id=pk,
                outcome=AttemptOutcome.UNCERTAIN,
                detail="sender stopped between claiming and recording the result",
            )
            for pk in stale
        )
    return n


# Classifying the mail server's answer ---------------------------------------------------------------


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return " ".join(str(value).split())[:250]


def classify(exc: BaseException) -> Outcome:
    """What an exception raised while sending one message means for that recipient."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(exc.recipients.values()), (None, b""))
        if code is not None and 400 <= code < 500:
            return Outcome(AttemptOutcome.TEMPORARY, code, _text(text))
        return Outcome(AttemptOutcome.BOUNCED, code, _text(text))
    if isinstance(exc, smtplib.SMTPResponseException):
        if 400 <= exc.smtp_code < 500:
            return Outcome(AttemptOutcome.TEMPORARY, exc.smtp_code, _text(exc.smtp_error))
        return Outcome(AttemptOutcome.FAILED, exc.smtp_code, _text(exc.smtp_error))
    if isinstance(exc, (smtplib.SMTPServerDisconnected, OSError)):
        return Outcome(AttemptOutcome.UNCERTAIN, None, f"connection lost ({type(exc).__name__})")
    return Outcome(AttemptOutcome.FAILED, None, f"internal error ({type(exc).__name__})")


def backoff(attempts: int) -> timedelta:
    """1, 2, 4, 8 ... times the base delay (LIAISON_CAMPAIGN_RETRY_SECONDS), at most a day."""
    return timedelta(
        seconds=min(86400.0, settings.LIAISON_CAMPAIGN_RETRY_SECONDS * 2 ** max(0, attempts - 1))
    )


def record_outcome(row: dict, token: str, outcome: Outcome, *, message_id: str = "") -> str:
    """Write the result of one attempt: the recipient's new status and the attempt row, together."""
    now = _now()
    attempts = row["attempts"] + 1
    status = {
        AttemptOutcome.SENT: RecipientStatus.SENT,
        AttemptOutcome.BOUNCED: RecipientStatus.BOUNCED,
        AttemptOutcome.FAILED: RecipientStatus.FAILED,
        AttemptOutcome.UNCERTAIN: RecipientStatus.UNCERTAIN,
    }.get(outcome.kind, RecipientStatus.QUEUED)
    fields: dict[str, Any] = {"status": status, "attempts": attempts, "reason": outcome.detail[:300]}
    kind = outcome.kind
    if outcome.kind == AttemptOutcome.SENT:
        fields.update(sent_at=now, message_id=message_id, reason="")
    elif outcome.kind == AttemptOutcome.TEMPORARY:
        if attempts >= settings.LIAISON_CAMPAIGN_MAX_ATTEMPTS:
            kind, status = AttemptOutcome.GAVE_UP, RecipientStatus.FAILED
            fields.update(
                status=status,
                reason=f"Gave up after {attempts} temporary failures: {outcome.detail}"[:300],
            )
        else:
            fields.update(next_attempt_at=now + backoff(attempts), claimed_by="", claimed_at=None)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Only the claim must be durable before the message goes: if a database crash lost this
            # record, the row would still be "sending" (claimed), hence uncertain, never resent.
            # So this commit need not wait for the disk, which halves the fsyncs per message.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        _update_claimed(row["pk"], token, fields)
        _insert_attempt(row["pk"], now, kind, outcome.code, outcome.detail[:300])
        if outcome.kind == AttemptOutcome.BOUNCED and row["email"]:
            Suppression.objects.get_or_create(
                email=row["email"],
                defaults={
                    "reason": SuppressionReason.BOUNCED,
                    "campaign_id": row["campaign_id"],
                    "recipient_id": row["pk"],
                    "detail": f"refused by the receiving server: {outcome.code} {outcome.detail}"[:300],
                    "actor_label": "campaign sender",
                },
            )
    return status


# Claiming ---------------------------------------------------------------------------------------------


# The two statements run for every message are plain SQL: building them with the ORM cost more
# than running them (measured in bench/campaign_send.py). They are the same on SQLite and PostgreSQL.


def _table(model: Any) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _dt(value: datetime | None) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


def claim(pk: int, token: str) -> bool:
    """Take one queued recipient for this sender, in one conditional UPDATE that commits on its
    own: only the sender whose UPDATE changed the row may send it, and only if the address is not
    suppressed (unsubscribed or bounced, in any campaign) and the person still consents. False if
    another sender took it or it may no longer be sent (then it is marked skipped, with why)."""
    r, s, c, p = _table(Recipient), _table(Suppression), _table(Contact), _table(Provider)
    sql = (
        f"UPDATE {r} SET status = %s, claimed_by = %s, claimed_at = %s WHERE id = %s AND status = %s"  # noqa: S608 (our table names)
        f" AND NOT EXISTS (SELECT 1 FROM {s} WHERE {s}.email = {r}.email)"
        f" AND ({r}.contact_id IS NULL OR EXISTS"
        f" (SELECT 1 FROM {c} WHERE {c}.id = {r}.contact_id AND {c}.email_consent = %s))"
        f" AND ({r}.provider_id IS NULL OR EXISTS"
        f" (SELECT 1 FROM {p} WHERE {p}.id = {r}.provider_id AND {p}.email_consent = %s))"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql, [RecipientStatus.SENDING, token, _dt(_now()), pk, RecipientStatus.QUEUED, True, True]
        )
        taken = cursor.rowcount
    if taken:
        return True
    row = Recipient.objects.filter(pk=pk, status=RecipientStatus.QUEUED).values("email").first()
    if row is not None:
        found = Suppression.objects.filter(email=row["email"]).values_list("reason", flat=True).first()
        reason = (
            f"Not sent: the address was {SuppressionReason(found).label.lower()} before its turn."
            if found
            else "Not sent: email consent was withdrawn before its turn."
        )
        Recipient.objects.filter(pk=pk, status=RecipientStatus.QUEUED).update(
            status=RecipientStatus.SKIPPED, reason=reason
        )
    return False


_DATETIMES = {"sent_at", "next_attempt_at", "claimed_at"}


def _update_claimed(pk: int, token: str, fields: dict[str, Any]) -> None:
    names = sorted(fields)
    values = [_dt(fields[n]) if n in _DATETIMES else fields[n] for n in names]
    sql = (
        f"UPDATE {_table(Recipient)} SET {', '.join(f'{n} = %s' for n in names)}"  # noqa: S608 (our column names)
        " WHERE id = %s AND claimed_by = %s AND status IN (%s, %s)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, pk, token, RecipientStatus.SENDING, RecipientStatus.UNCERTAIN])


def _insert_attempt(pk: int, at: datetime, outcome: str, code: int | None, detail: str) -> None:
    sql = (
        f"INSERT INTO {_table(DeliveryAttempt)} (recipient_id, at, outcome, smtp_code, detail)"  # noqa: S608
        " VALUES (%s, %s, %s, %s, %s)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [pk, _dt(at), outcome, code, detail])


def _dropped(conn: Any) -> bool:
    """smtplib closes its socket itself on some replies (421): reconnect before the next message
    rather than fail it as a lost connection."""
    smtp = getattr(conn, "connection", None)
    return smtp is not None and getattr(smtp, "sock", True) is None


class Pacer:
    """At most `rate` messages per second (0: no limit)."""

    def __init__(self, rate: float, sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 1.0 / rate if rate and rate > 0 else 0.0
        self.next_at = time.monotonic()
        self.sleep = sleep

    def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        if now < self.next_at:
            self.sleep(self.next_at - now)
            now = self.next_at
        self.next_at = max(now, self.next_at) + self.interval


def _due_batch(campaign_id: int) -> list[dict]:
    now = _now()
    return list(
        Recipient.objects.filter(campaign_id=campaign_id, status=RecipientStatus.QUEUED)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .order_by("pk")
        .values("pk", "campaign_id", "email", "name", "merge", "attempts")[:BATCH]
    )


def processed_count(campaign_id: int) -> int:
    return (
        Recipient.objects.filter(campaign_id=campaign_id)
        .exclude(status__in=[RecipientStatus.QUEUED, RecipientStatus.SENDING])
        .count()
    )


def _finish(campaign_id: int, token: str) -> None:
    Campaign.objects.filter(pk=campaign_id, sender_token=token, status=CampaignStatus.SENDING).update(
        status=CampaignStatus.SENT, finished_at=_now(), sender_token="", lease_until=None, retry_at=None
    )


def deliver(
    campaign_id: int,
    *,
    progress: Progress | None = None,
    connection: Any = None,
    rate: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> RunResult:
    """Send what is due of one campaign; returns why it stopped. Safe to call any number of
    times, from any number of workers: only the lease holder sends, each recipient at most once."""
    token = secrets.token_hex(16)
    if not take_lease(campaign_id, token):
        return RunResult("busy")
    progress = progress or Progress()
    result = RunResult("finished")
    conn = None
    try:
        mark_interrupted(campaign_id, token)
        campaign = Campaign.objects.get(pk=campaign_id)
        content = Content.of(campaign)
        total = Recipient.objects.filter(campaign_id=campaign_id).count()
        already = processed_count(campaign_id)
        progress.start(total, f"sending {campaign.name}")
        if already:
            progress.advance(already)  # a resumed send carries on from what was done
        result.processed = already
        pacer = Pacer(settings.LIAISON_CAMPAIGN_RATE if rate is None else rate, sleep)
        timeout = max(5.0, min(30.0, settings.LIAISON_CAMPAIGN_LEASE_SECONDS / 2))
        conn = connection or get_connection(timeout=timeout)
        renew_every = min(RENEW_EVERY, settings.LIAISON_CAMPAIGN_LEASE_SECONDS / 3)
        last_renewal = last_use = time.monotonic()
        while True:
            batch = _due_batch(campaign_id)
            if not batch:
                pending = (
                    Recipient.objects.filter(campaign_id=campaign_id, status=RecipientStatus.QUEUED)
                    .aggregate(m=Min("next_attempt_at"))
                    .get("m")
                )
                if (
                    pending is None
                    and not Recipient.objects.filter(
                        campaign_id=campaign_id, status=RecipientStatus.QUEUED
                    ).exists()
                ):
                    _finish(campaign_id, token)
                    break
                wait = (pending - _now()).total_seconds() if pending else 0.0
                if wait > SHORT_WAIT:
                    result.state, result.resume_at = "waiting", pending
                    release_lease(campaign_id, token, retry_at=pending)
                    token = ""
                    break
                # A retry due soon: wait for it here, keeping the lease.
                while wait > 0:
                    step = min(wait, renew_every)
                    sleep(step)
                    wait -= step
                    if not renew_lease(campaign_id, token):
                        result.state = "stopped"
                        return result
                last_renewal = time.monotonic()
                continue
            for row in batch:
                if time.monotonic() - last_renewal > renew_every:
                    if not renew_lease(campaign_id, token):
                        result.state = "stopped"
                        return result
                    last_renewal = time.monotonic()
                if not claim(row["pk"], token):
                    result.processed += 1
                    progress.advance()
                    continue
                pacer.wait()
                if time.monotonic() - last_use > IDLE_RECONNECT or _dropped(conn):
                    conn.close()
                try:
                    conn.open()
                except Exception as exc:
                    # Nothing was handed over: put the row back as it was and try the campaign later.
                    Recipient.objects.filter(pk=row["pk"], claimed_by=token).update(
                        status=RecipientStatus.QUEUED, claimed_by="", claimed_at=None
                    )
                    retry = _now() + backoff(1)
                    logger.warning(
                        "campaign %s: mail server unreachable (%s)", campaign_id, type(exc).__name__
                    )
                    release_lease(campaign_id, token, retry_at=retry)
                    token = ""
                    result.state, result.resume_at = "unreachable", retry
                    return result
                message = build_message(
                    content, pk=row["pk"], email=row["email"], name=row["name"], person_values=row["merge"]
                )
                try:
                    conn.send_messages([message])
                except Exception as exc:
                    outcome = classify(exc)
                    conn.close()  # a fresh connection for the next message, whatever went wrong
                else:
                    outcome = Outcome(AttemptOutcome.SENT)
                last_use = time.monotonic()
                status = record_outcome(row, token, outcome, message_id=message.extra_headers["Message-ID"])
                if status == RecipientStatus.SENT:
                    result.sent += 1
                if status != RecipientStatus.QUEUED:
                    result.processed += 1
                    progress.advance()
        return result
    except Exception:
        # A fault of ours (not the mail server's): try again in a few minutes, not in a loop.
        if token:
            release_lease(campaign_id, token, retry_at=_now() + backoff(3))
            token = ""
        raise
    finally:
        if conn is not None:
            try:
                conn.close()
            except Exception:
                logger.warning("campaign %s: closing the mail connection failed", campaign_id)
        if token:
            release_lease(campaign_id, token)


def counts(campaign_id: int) -> dict[str, int]:
    return dict(
        Recipient.objects.filter(campaign_id=campaign_id)
        .order_by()
        .values_list("status")
        .annotate(n=Count("pk"))
    )
