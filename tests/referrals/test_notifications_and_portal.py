"""The referring office is informed at each milestone (letter, PHI-free email, FHIR Task), and
its staff can use the portal: one-time link, send a referral, follow their office's referrals."""

import datetime as dt
import http.server
import json
import re
import threading

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from liaison.audit.models import AuditEvent
from liaison.core.phi import decrypt_bytes
from liaison.directory import services as directory
from liaison.referrals import services
from liaison.referrals.models import Notification, OfficePreference, PortalToken, Referral, Status
from tests.referrals.conftest import PATIENT


@pytest.fixture
def office_contact(referring_practice, referring_location):
    return directory.create_contact(
        referring_practice,
        actor="test",
        first_name="Rita",
        last_name="Coordinator",
        role="referral_coordinator",
        email="rita@maple.example",
        location=referring_location,
    )


def _move(referral, *steps, **kwargs):
    for step in steps:
        extra = {"appointment_at": timezone.now() + dt.timedelta(days=2)} if step == Status.SCHEDULED else {}
        if step == Status.NOTE_SENT:
            extra = {"channel": "fax", "included": ["consult_note", "recommendations"]}
        services.change_status(referral, step, actor="test", **extra, **kwargs)


def test_each_milestone_prepares_a_fax_ready_letter_by_default(referral, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        _move(referral, Status.ACCEPTED, Status.SCHEDULED, Status.SEEN, Status.NOTE_SENT)
    milestones = list(
        Notification.objects.filter(referral=referral).values_list("milestone", "channel", "outcome")
    )
    # received was notified at creation time outside this block; accepted is not a milestone.
    assert milestones == [
        ("scheduled", "letter", "ready"),
        ("seen", "letter", "ready"),
        ("note_sent", "letter", "ready"),
    ]
    letter = Notification.objects.get(referral=referral, milestone="note_sent")
    pdf = decrypt_bytes(letter.document.storage.open(letter.document.name, "rb").read())
    assert pdf.startswith(b"%PDF")
    assert letter.recipient == "(614) 555-0102"  # the office fax
    assert referral.events.filter(kind="notification").count() == 3


def test_the_office_is_told_when_we_decline_or_cancel_so_it_can_refer_elsewhere(
    make_referral, django_capture_on_commit_callbacks
):
    from liaison.referrals.notifications import milestone_sentence

    declined, cancelled = make_referral(), make_referral(patient_last_name="Second")
    with django_capture_on_commit_callbacks(execute=True):
        services.change_status(declined, Status.DECLINED, actor="test", decline_reason="wrong_specialty")
        _move(cancelled, Status.ACCEPTED, Status.SCHEDULED, Status.CANCELLED)
    for referral, milestone in ((declined, "declined"), (cancelled, "cancelled")):
        letter = Notification.objects.get(referral=referral, milestone=milestone)
        assert letter.channel == "letter" and letter.outcome == "ready"
    sentence = milestone_sentence(declined.events.get(to_status="declined"))
    assert "(not our specialty)" in sentence and "refer the patient to another provider" in sentence
    assert "has no appointment with us" in milestone_sentence(cancelled.events.get(to_status="cancelled"))
    # Re-opening does not acknowledge the referral a second time.
    with django_capture_on_commit_callbacks(execute=True):
        services.change_status(declined, Status.RECEIVED, actor="test")
    assert (
        not Notification.objects.filter(referral=declined, milestone="received")
        .exclude(event=declined.events.get(from_status="", to_status="received"))
        .exists()
    )


def test_a_letter_counts_as_sent_once_someone_faxes_it(
    client_for, make_referral, django_capture_on_commit_callbacks
):
    coordinator = client_for("coordinator")
    declined = make_referral()
    with django_capture_on_commit_callbacks(execute=True):
        services.change_status(declined, Status.DECLINED, actor="test", decline_reason="incomplete")
    letter = Notification.objects.get(referral=declined, milestone="declined")
    assert letter.outcome == "ready" and letter.sent_at is None
    # The ended referral waits in "Letters to send" until its letter went out.
    queue = reverse("referrals:queue")
    assert f"#{declined.pk}</small>" in coordinator.get(queue, {"view": "letters"}).content.decode()
    detail = coordinator.get(reverse("referrals:detail", args=[declined.pk])).content.decode()
    assert "Faxed or mailed" in detail
    coordinator.post(reverse("referrals:letter_sent", args=[declined.pk, letter.pk]))
    coordinator.post(reverse("referrals:letter_sent", args=[declined.pk, letter.pk]))  # a second click
    letter.refresh_from_db()
    assert letter.outcome == "sent" and letter.sent_at is not None
    assert f"#{declined.pk}</small>" not in coordinator.get(queue, {"view": "letters"}).content.decode()
    detail = coordinator.get(reverse("referrals:detail", args=[declined.pk])).content.decode()
    assert detail.count("Letter to the office faxed or mailed (declined)") == 1
    assert AuditEvent.objects.filter(action="letter_sent", actor_label=coordinator.user.email).count() == 1
    # A liaison cannot.
    assert (
        client_for("liaison")
        .post(reverse("referrals:letter_sent", args=[declined.pk, letter.pk]))
        .status_code
        == 403
    )


def test_notifying_twice_sends_once(referral, django_capture_on_commit_callbacks):
    from liaison.referrals.notifications import notify

    event = referral.events.get(to_status="received")
    first, second = notify(event), notify(event)
    assert first == second and Notification.objects.filter(event=event).count() == 1


def test_the_email_to_the_office_contains_no_patient_data(
    referral, office_contact, referring_location, django_capture_on_commit_callbacks
):
    OfficePreference.objects.create(location=referring_location, notify_by="email", contact=office_contact)
    with django_capture_on_commit_callbacks(execute=True):
        _move(referral, Status.ACCEPTED, Status.SCHEDULED)
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["rita@maple.example"]
    text = message.subject + message.body
    for secret in ("Zelda", "Quackenbush", "1961", "778899", "knee", "Medicare"):
        assert secret not in text
    assert "/portal/" in message.body and "scheduled" in message.subject


def test_a_fhir_office_gets_the_task_pushed(referral, referring_location, django_capture_on_commit_callbacks):
    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_PUT(self):
            received.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        OfficePreference.objects.create(
            location=referring_location,
            notify_by="fhir",
            fhir_endpoint=f"http://127.0.0.1:{server.server_port}/fhir",
        )
        with django_capture_on_commit_callbacks(execute=True):
            _move(referral, Status.ACCEPTED, Status.SCHEDULED)
    finally:
        server.shutdown()
    path, task = received[0]
    assert path == f"/fhir/Task/liaison-{referral.pk}"
    assert task["resourceType"] == "Task" and task["status"] == "in-progress"
    assert task["businessStatus"]["coding"][0]["code"] == "scheduled"
    assert "Quackenbush" not in json.dumps(task)


def _portal_sign_in(client: Client, email: str) -> None:
    client.post(reverse("portal:start"), {"email": email})
    link = re.search(r"https?://\S+/portal/login/(\S+)/", mail.outbox[-1].body)
    client.post(reverse("portal:login", args=[link.group(1)]))


def test_an_office_contact_signs_in_once_and_sees_only_their_office(
    client, referral, office_contact, far_provider
):
    other = services.receive_referral(
        actor="test",
        referrer=services.ReferrerInfo(npi=far_provider.npi),
        **{**PATIENT, "patient_last_name": "Elsewhere"},
    )
    response = client.post(reverse("portal:start"), {"email": "RITA@maple.example"})
    assert b"If this address belongs to a referring office" in response.content
    body = mail.outbox[0].body
    token = re.search(r"/portal/login/(\S+)/", body).group(1)
    assert (
        client.get(reverse("portal:login", args=[token])).status_code == 200
    )  # a scanner opening the link does not use it
    client.post(reverse("portal:login", args=[token]))
    page = client.get(reverse("portal:referrals")).content.decode()
    assert "Quackenbush" in page and "Elsewhere" not in page
    assert Client().post(reverse("portal:login", args=[token])).status_code == 410  # used
    assert AuditEvent.objects.filter(action="portal_login", actor_label="portal:rita@maple.example").exists()
    assert AuditEvent.objects.filter(
        action="view_list", actor_label="portal:rita@maple.example", phi=True
    ).exists()
    assert (
        client.get(reverse("referrals:detail", args=[other.pk])).status_code == 302
    )  # staff pages: not for the portal


def test_unknown_addresses_get_the_same_answer_and_no_email(client, db):
    response = client.post(reverse("portal:start"), {"email": "stranger@example.org"})
    assert b"If this address belongs to a referring office" in response.content
    assert mail.outbox == []


def test_link_requests_are_rate_limited(client, office_contact):
    for _ in range(6):
        client.post(reverse("portal:start"), {"email": "rita@maple.example"})
    assert len(mail.outbox) == 3
    assert AuditEvent.objects.filter(action="portal_throttled").exists()


def test_expired_links_do_not_work(client, office_contact):
    client.post(reverse("portal:start"), {"email": "rita@maple.example"})
    token = re.search(r"/portal/login/(\S+)/", mail.outbox[0].body).group(1)
    PortalToken.objects.update(expires_at=timezone.now() - dt.timedelta(minutes=1))
    assert client.post(reverse("portal:login", args=[token])).status_code == 410
    assert client.get(reverse("portal:referrals")).status_code == 302


def test_an_office_sends_a_referral_with_a_document_through_the_portal(
    client, office_contact, referring_provider
):
    _portal_sign_in(client, "rita@maple.example")
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client.post(
        reverse("portal:new"),
        {
            "patient_first_name": "Paul",
            "patient_last_name": "Portal",
            "patient_dob": "1970-01-01",
            "referring_provider": referring_provider.pk,
            "urgency": "routine",
            "reason": "shoulder pain",
            "document": SimpleUploadedFile("notes.pdf", b"%PDF-1.4 notes", content_type="application/pdf"),
        },
    )
    assert response.status_code == 302
    referral = Referral.objects.get(channel="portal")
    assert referral.referring_provider == referring_provider and referral.documents.count() == 1
    assert referral.events.first().actor_label == "portal:rita@maple.example"


def test_a_coordinator_sets_how_an_office_hears_about_its_referrals(
    client_for, referring_location, office_contact, make_referral, django_capture_on_commit_callbacks
):
    c = client_for("coordinator")
    practice_page = c.get(
        reverse("directory:practice", args=[referring_location.practice_id])
    ).content.decode()
    url = reverse("referrals:office_updates", args=[referring_location.pk])
    assert url in practice_page and "Letter / fax (PDF), the default" in practice_page
    # Email needs someone with an address at that practice.
    refused = c.post(url, {"notify_by": "email"}).content.decode()
    assert "Emails go to a person with an email address" in refused
    c.post(url, {"notify_by": "email", "contact": office_contact.pk})
    preference = OfficePreference.objects.get(location=referring_location)
    assert preference.notify_by == "email" and preference.contact == office_contact
    assert AuditEvent.objects.filter(
        action="office_preference", object_id=str(referring_location.pk)
    ).exists()
    with django_capture_on_commit_callbacks(execute=True):
        referral = make_referral()
    assert referral.notifications.get().channel == "email" and mail.outbox[-1].to == ["rita@maple.example"]
    # Liaisons, analysts and physicians cannot change it (and do not see the link).
    for role in ("liaison", "analyst", "physician"):
        assert client_for(role).get(url).status_code == 403
        page = (
            client_for(role, email=f"{role}2@example.org")
            .get(reverse("directory:practice", args=[referring_location.practice_id]))
            .content.decode()
        )
        assert url not in page
