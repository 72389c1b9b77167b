"""Who may do what with campaigns (pages and API), every page renders, list pages do a fixed
number of queries, and no API payload carries a patient field."""

import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from liaison.campaigns import services
from liaison.campaigns.models import Campaign, CampaignKind, Recipient, RecipientStatus, Suppression
from liaison.directory.models import Contact
from tests.campaigns.conftest import email_template
from tests.conftest import ROLES

READERS = ROLES  # every role reads campaigns and their results
SENDERS = ["admin", "manager", "liaison"]


@pytest.fixture
def sent_newsletter(world, newsletter, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.start_send(newsletter, actor=world.lee)
    newsletter.refresh_from_db()
    return newsletter


def _pages(campaign, segment, template):
    return [
        "/campaigns/",
        f"/campaigns/{campaign.pk}/",
        f"/campaigns/{campaign.pk}/recipients/",
        f"/campaigns/{campaign.pk}/preview/",
        "/campaigns/segments/",
        f"/campaigns/segments/{segment.pk}/",
        "/campaigns/templates/",
        "/campaigns/suppressions/",
    ]


@pytest.mark.parametrize("role", READERS)
def test_every_role_reads_campaigns_and_results(role, client_for, sent_newsletter):
    client = client_for(role)
    for url in _pages(sent_newsletter, sent_newsletter.segment, sent_newsletter.template):
        assert client.get(url).status_code == 200, url
    assert client.get("/api/v1/campaigns").status_code == 200
    detail = client.get(f"/api/v1/campaigns/{sent_newsletter.pk}").json()
    assert detail["results"]["delivered"] == 8 and detail["status"] == "sent"


@pytest.mark.parametrize("role", sorted(set(ROLES) - set(SENDERS)))
def test_coordinators_physicians_and_analysts_cannot_build_or_send(role, client_for, world, newsletter):
    client = client_for(role)
    for url in [
        "/campaigns/new/",
        "/campaigns/segments/new/",
        "/campaigns/templates/new/",
        f"/campaigns/{newsletter.pk}/edit/",
        f"/campaigns/{newsletter.pk}/check-in/",
    ]:
        assert client.get(url).status_code == 403, url
    for url in [
        f"/campaigns/{newsletter.pk}/send/",
        f"/campaigns/{newsletter.pk}/stop/",
        f"/campaigns/{newsletter.pk}/draw/",
        "/campaigns/suppressions/add/",
    ]:
        assert client.post(url).status_code == 403, url
    assert client.post(f"/api/v1/campaigns/{newsletter.pk}/send").status_code == 403
    assert client.post("/api/v1/segments", {"name": "x"}, content_type="application/json").status_code == 403
    assert not Recipient.objects.exists()


def test_a_liaison_changes_only_their_own_campaigns_a_manager_any(world, newsletter, client_for):
    other = client_for("liaison", email="other.liaison@example.org")
    assert other.get(f"/campaigns/{newsletter.pk}/edit/").status_code == 403
    assert other.post(f"/campaigns/{newsletter.pk}/send/").status_code == 403
    assert other.post(f"/api/v1/campaigns/{newsletter.pk}/send").status_code == 403
    manager = client_for("manager")
    assert manager.get(f"/campaigns/{newsletter.pk}/edit/").status_code == 200


def test_anonymous_users_are_sent_to_sign_in_and_public_links_need_a_valid_token(world, newsletter):
    client = Client()
    assert client.get("/campaigns/").status_code == 302
    assert client.get("/api/v1/campaigns").status_code == 401
    for url in ("/c/u/12.bad/", "/c/q/12.bad/", "/c/r/12.bad/", "/c/l/12.bad/0/"):
        assert client.get(url).status_code == 404, url
    assert client.get("/c/o/12.bad/")["Content-Type"] == "image/gif"  # a pixel never fails


def test_a_liaison_builds_a_segment_and_a_campaign_from_the_pages(world, client_for):
    client = client_for("liaison")
    response = client.post(
        "/campaigns/segments/new/",
        {
            "name": "North coordinators",
            "audiences": ["referral_coordinator"],
            "territories": [world.north.pk],
        },
    )
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "Ralph Referral" in page and "Rhonda Referral" in page and "Rita" not in page
    bad = client.post(
        "/campaigns/segments/new/", {"name": "x", "untouched_days": "30", "touched_within_days": "5"}
    )
    assert bad.status_code == 200 and "Nobody can be both" in bad.content.decode()

    segment_id = int(response["Location"].rstrip("/").rsplit("/", 1)[1])
    template = email_template()
    response = client.post(
        "/campaigns/new/",
        {"name": "Hello north", "kind": "newsletter", "segment": segment_id, "template": template.pk},
    )
    campaign = Campaign.objects.get(name="Hello north")
    assert response["Location"] == f"/campaigns/{campaign.pk}/" and campaign.created_by == client.user
    bad = client.post("/campaigns/templates/new/", {"name": "t", "channel": "email", "subject": "s",
                                                   "body_text": "{{ referral.patient_last_name }}"})  # fmt: skip
    assert "patient and referral data can never be merged" in bad.content.decode()


def test_suppression_list_rules(world, sent_newsletter, client_for):
    rita = Recipient.objects.get(campaign=sent_newsletter, email="rita@maple.example")
    services.unsubscribe(rita)
    unsub = Suppression.objects.get(email="rita@maple.example")
    manager = client_for("manager")
    assert manager.get(f"/campaigns/suppressions/{unsub.pk}/remove/").status_code == 403  # admin only
    manager.post("/campaigns/suppressions/add/", {"email": "Old@Gone.example", "reason": "bounced"})
    flagged = Suppression.objects.get(email="old@gone.example")
    assert manager.post(f"/campaigns/suppressions/{flagged.pk}/remove/", {"note": ""}).status_code == 200
    assert Suppression.objects.filter(pk=flagged.pk).exists()  # a note is required
    manager.post(f"/campaigns/suppressions/{flagged.pk}/remove/", {"note": "address fixed"})
    assert not Suppression.objects.filter(pk=flagged.pk).exists()
    admin = client_for("admin")
    admin.post(f"/campaigns/suppressions/{unsub.pk}/remove/", {"note": "asked in writing on 1 May"})
    assert not Suppression.objects.filter(pk=unsub.pk).exists()
    assert not Contact.objects.get(pk=world.rita.pk).email_consent  # consent stays withdrawn


def test_the_api_builds_a_segment_lists_members_and_sends(
    world, client_for, django_capture_on_commit_callbacks
):
    client = client_for("liaison")
    response = client.post(
        "/api/v1/segments",
        json.dumps(
            {
                "name": "Central coordinators",
                "audiences": ["referral_coordinator"],
                "territories": [world.central.pk],
            }
        ),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    segment_id = response.json()["id"]
    members = client.get(f"/api/v1/segments/{segment_id}/members").json()
    assert members["count"] == 1 and members["members"][0]["name"] == "Rita Referral"
    bad = client.post(
        "/api/v1/segments", json.dumps({"name": "x", "tiers": ["Z"]}), content_type="application/json"
    )
    assert bad.status_code == 400 and "tiers" in bad.json()["errors"]
    campaign = services.create_campaign(
        actor=client.user, name="API", kind=CampaignKind.NEWSLETTER,
        segment=services.Segment.objects.get(pk=segment_id), template=email_template(),
    )  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        sent = client.post(f"/api/v1/campaigns/{campaign.pk}/send")
    assert sent.status_code == 202 and sent.json()["url"].startswith("/jobs/")
    again = client.post(f"/api/v1/campaigns/{campaign.pk}/send")
    assert again.status_code == 400 and "already" in again.json()["errors"]["__all__"][0]
    recipients = client.get(f"/api/v1/campaigns/{campaign.pk}/recipients").json()["items"]
    assert [r["status"] for r in recipients] == ["sent"]
    keys = {k for r in recipients for k in r} | set(client.get(f"/api/v1/campaigns/{campaign.pk}").json())
    assert not {k for k in keys if "patient" in k or "referral_id" in k or "dob" in k}


def _more_recipients(campaign, n, start=0):
    Recipient.objects.bulk_create(
        Recipient(campaign=campaign, name=f"P{i}", email=f"p{i}@x.example", status=RecipientStatus.SENT)
        for i in range(start, start + n)
    )
    Suppression.objects.bulk_create(
        Suppression(email=f"s{i}@x.example", reason="bounced") for i in range(start, start + n)
    )


def test_list_pages_do_a_fixed_number_of_queries(
    world, sent_newsletter, client_for, django_assert_num_queries
):
    client = client_for("liaison")
    services.create_campaign(
        actor=world.lee,
        name="Second",
        kind="newsletter",
        segment=sent_newsletter.segment,
        template=sent_newsletter.template,
    )
    _more_recipients(sent_newsletter, 2)
    urls = ["/campaigns/", f"/campaigns/{sent_newsletter.pk}/recipients/", "/campaigns/suppressions/"]
    counts = {}
    for url in urls:
        client.get(url)
        with CaptureQueriesContext(connection) as ctx:
            client.get(url)
        counts[url] = len(ctx.captured_queries)
    _more_recipients(sent_newsletter, 30, start=2)
    services.create_campaign(
        actor=world.lee,
        name="Third",
        kind="newsletter",
        segment=sent_newsletter.segment,
        template=sent_newsletter.template,
    )
    for url in urls:
        with django_assert_num_queries(counts[url]):
            assert client.get(url).status_code == 200


def test_quiz_event_and_letter_pages_work_end_to_end_for_their_author(
    world, coordinators_north, our_physician, site, client_for, django_capture_on_commit_callbacks
):
    from liaison.campaigns.models import Template

    client = client_for("liaison")
    quiz_template = Template.objects.get(name="Quiz of the month")  # a starter template
    client.post(
        "/campaigns/new/",
        {"name": "Quiz", "kind": "quiz", "segment": coordinators_north.pk, "template": quiz_template.pk},
    )
    quiz = Campaign.objects.get(name="Quiz")
    form = client.get(f"/campaigns/{quiz.pk}/quiz/")
    assert form.status_code == 200
    closes = form.context["form"].initial["closes_at"]
    response = client.post(f"/campaigns/{quiz.pk}/quiz/", {
        "closes_at": closes, "rule": "random", "prize": "a coffee",
        "q1_text": "Largest joint?", "q1_choices": "Knee\nElbow", "q1_correct": "1",
        "q2_text": "Bad one", "q2_choices": "Only one", "q2_correct": "1",
    })  # fmt: skip
    assert response.status_code == 200 and "give 2 to 6 choices" in response.content.decode()
    client.post(f"/campaigns/{quiz.pk}/quiz/", {"closes_at": closes, "rule": "random", "prize": "a coffee",
                "q1_text": "Largest joint?", "q1_choices": "Knee\nElbow", "q1_correct": "1"})  # fmt: skip
    page = client.get(f"/campaigns/{quiz.pk}/").content.decode()
    assert 'id="problems"' not in page and "Send now" in page
    preview = client.get(f"/campaigns/{quiz.pk}/preview/").content.decode()
    assert "Rhonda Referral" in preview and "Hello Rhonda" in preview and "a coffee" in preview

    invite = Template.objects.get(name="Seminar invitation")
    client.post("/campaigns/new/", {"name": "Seminar", "kind": "event", "segment": coordinators_north.pk,
                                    "template": invite.pk, "featured_physician": our_physician.pk})  # fmt: skip
    seminar = Campaign.objects.get(name="Seminar")
    assert client.get(f"/campaigns/{seminar.pk}/event/").status_code == 200
    client.post(f"/campaigns/{seminar.pk}/event/", {"kind": "seminar", "starts_at": "2099-03-04T18:00", "site": site.pk,
                                                    "speakers": [our_physician.pk]})  # fmt: skip
    assert seminar.event.site == site
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/campaigns/{seminar.pk}/send/")
    assert response.status_code == 302 and response["Location"].startswith("/jobs/")
    checkin = client.get(f"/campaigns/{seminar.pk}/check-in/")
    assert checkin.status_code == 200 and "Ralph Referral" in checkin.content.decode()
    ralph = Recipient.objects.get(campaign=seminar, email="ralph@oak.example")
    refused = client.post(
        f"/campaigns/{seminar.pk}/check-in/{ralph.pk}/", follow=True
    )  # the event is in 2099
    assert "Check-in opens on the day" in refused.content.decode()

    letter = Template.objects.get(name="Letter: introducing a new physician")
    client.post("/campaigns/new/", {"name": "Letters", "kind": "letter", "segment": coordinators_north.pk,
                                    "template": letter.pk, "featured_physician": our_physician.pk})  # fmt: skip
    letters = Campaign.objects.get(name="Letters")
    key = f"contact-{world.ralph.pk}"
    assert client.get(f"/campaigns/{letters.pk}/letter.pdf?key={key}").content.startswith(b"%PDF")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/campaigns/{letters.pk}/send/")
    pdf = client.get(f"/campaigns/{letters.pk}/letters.pdf")
    assert pdf.status_code == 200 and b"".join(pdf.streaming_content).startswith(b"%PDF")
    assert "letters printed" in client.get(f"/campaigns/{letters.pk}/").content.decode()
