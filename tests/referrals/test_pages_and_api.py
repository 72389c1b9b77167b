"""Who sees referrals: coordinators, managers, admins all; physicians their own; liaisons and
analysts none, in pages and API, and every attempt and every view is audited."""

import datetime as dt
import json
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from liaison.accounts import services as accounts
from liaison.audit.models import AuditEvent
from liaison.directory import services as directory
from liaison.referrals import services
from liaison.referrals.models import Referral, Status
from tests.conftest import make_npi
from tests.referrals.conftest import PATIENT

NO_PHI_ROLES = ["liaison", "analyst"]


@pytest.fixture
def other_physician(site):
    return directory.create_provider(
        actor="test", first_name="Other", last_name="Surgeon", npi=make_npi(9), is_ours=True, locations=[site]
    )


@pytest.mark.parametrize("role", NO_PHI_ROLES)
def test_roles_without_phi_access_are_refused_everywhere_and_it_is_audited(client_for, role, referral):
    c = client_for(role)
    urls = [
        reverse("referrals:queue"),
        reverse("referrals:intake"),
        reverse("referrals:detail", args=[referral.pk]),
        reverse("referrals:edit", args=[referral.pk]),
        reverse("referrals:service_levels"),
    ]
    for url in urls:
        response = c.get(url)
        assert response.status_code == 403, url
        assert b"Quackenbush" not in response.content
    assert (
        c.post(reverse("referrals:change_status", args=[referral.pk]), {"to_status": "accepted"}).status_code
        == 403
    )
    assert AuditEvent.objects.filter(action="denied", actor=c.user).count() == len(urls) + 1
    assert Referral.objects.get(pk=referral.pk).status == Status.RECEIVED
    assert b"Referrals" not in c.get(reverse("core:home")).content.split(b"<main")[0]  # no nav link


@pytest.mark.parametrize("role", NO_PHI_ROLES)
def test_the_api_refuses_referrals_to_roles_without_phi_access(client_for, role, referral):
    c = client_for(role)
    assert c.get("/api/v1/referrals").status_code == 403
    assert c.get(f"/api/v1/referrals/{referral.pk}").status_code == 403
    search = c.post("/api/v1/referrals/search", json.dumps({"patient": "Quackenbush"}), "application/json")
    assert search.status_code == 403 and "Quackenbush" not in search.content.decode()
    response = c.post(
        "/api/v1/referrals",
        json.dumps({**PATIENT, "patient_dob": "1961-04-02"}),
        content_type="application/json",
    )
    assert response.status_code == 403
    assert "Quackenbush" not in response.content.decode()


def test_a_search_for_a_patient_never_puts_the_name_in_a_url(client_for, make_referral):
    coordinator = client_for("coordinator")
    make_referral(patient_last_name="Second")
    make_referral()
    queue = reverse("referrals:queue")
    page = coordinator.get(queue).content.decode()
    assert (
        'method="post" id="queue-filters"' in page
        and "hx-get" not in page.split('id="queue-filters"')[1][:200]
    )
    # An old bookmark with a name in it searches nothing.
    assert "Quackenbush" in coordinator.get(queue, {"patient": "second"}).content.decode()
    # The other filters go back in the URL, the name does not.
    plain = coordinator.post(queue, {"view": "unassigned", "patient": ""})
    assert plain.status_code == 302 and plain["Location"] == f"{queue}?view=unassigned"
    live = coordinator.post(
        queue, {"view": "unassigned", "patient": "second"}, headers={"HX-Request": "true"}
    )
    assert "Second" in live.content.decode() and "Quackenbush" not in live.content.decode()
    assert live["HX-Push-Url"] == f"{queue}?view=unassigned"
    # More than a page of results: the next page is asked for by posting the form again.
    for _ in range(60):
        make_referral(patient_last_name="Second")
    found = coordinator.post(queue, {"patient": "second"}).content.decode()
    assert 'form="queue-filters" name="page" value="2"' in found and "?page=2" not in found
    assert "Second" in coordinator.post(queue, {"patient": "second", "page": "2"}).content.decode()


def test_the_api_searches_the_queue_by_patient_with_the_name_in_the_body(client_for, make_referral):
    make_referral(patient_last_name="Second")
    make_referral()
    c = client_for("coordinator")
    body = c.post("/api/v1/referrals/search", json.dumps({"patient": "second"}), "application/json").json()
    assert [r["patient_last_name"] for r in body["items"]] == ["Second"]
    assert c.get("/api/v1/referrals", {"patient": "second"}).json()["count"] == 2  # not a filter here


def test_a_physician_sees_only_their_own_patients(
    make_user, client_for, make_referral, our_physician, other_physician
):
    mine = make_referral()
    theirs = make_referral(referred_to_physician=other_physician, patient_last_name="Notmine")
    c = client_for("physician", provider=our_physician)
    queue = c.get(reverse("referrals:queue")).content.decode()
    assert "Quackenbush" in queue and "Notmine" not in queue
    assert c.get(reverse("referrals:detail", args=[mine.pk])).status_code == 200
    assert c.get(reverse("referrals:detail", args=[theirs.pk])).status_code == 404
    assert c.get(f"/api/v1/referrals/{theirs.pk}").status_code == 404
    assert AuditEvent.objects.filter(action="denied", object_id=str(theirs.pk), actor=c.user).count() == 2


def test_every_view_of_patient_data_is_audited(client_for, referral):
    c = client_for("coordinator")
    c.get(reverse("referrals:detail", args=[referral.pk]))
    c.get(reverse("referrals:queue"))
    c.get(f"/api/v1/referrals/{referral.pk}")
    c.get("/api/v1/referrals")
    actions = list(
        AuditEvent.objects.filter(actor=c.user, phi=True).order_by("seq").values_list("action", flat=True)
    )
    assert actions == ["view", "view_list", "api_view", "api_list"]
    listed = AuditEvent.objects.get(actor=c.user, action="view_list")
    assert listed.changes == {"ids": [referral.pk]}


def test_a_coordinator_takes_a_referral_through_the_pages(
    client_for, referral, django_capture_on_commit_callbacks
):
    c = client_for("coordinator")
    url = reverse("referrals:change_status", args=[referral.pk])
    when = (timezone.localtime() + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    with django_capture_on_commit_callbacks(execute=True):
        c.post(url, {"to_status": "accepted"})
        c.post(url, {"to_status": "scheduled", "appointment_at": when})
        response = c.post(url, {"to_status": "closed"}, follow=True)
        assert "cannot become closed" in response.content.decode()
        c.post(url, {"to_status": "seen"})
        c.post(url, {"to_status": "note_sent", "channel": "fax", "included": ["consult_note", "orders"]})
    referral.refresh_from_db()
    assert referral.status == Status.NOTE_SENT
    html = c.get(reverse("referrals:detail", args=[referral.pk])).content.decode()
    for text in [
        "Accepted",
        "Scheduled",
        "Seen",
        "Consult note sent",
        "by fax with consult note, orders",
        # A letter is prepared, not yet sent: the timeline does not say the office was told.
        "Letter to the office prepared (consult note sent): ready to fax or mail",
    ]:
        assert text in html
    assert "note_sent" not in html.split('id="timeline"')[-1].split("</ol>")[0]
    # The timeline says when the appointment is, as the referral's header does.
    booked = timezone.localtime() + dt.timedelta(days=2)
    assert f"appointment {booked:%A %b} {booked.day}, {booked.year}" in html


def test_the_timeline_names_a_decline_reason(client_for, make_referral):
    referral = make_referral()
    services.record_contact(referral, actor="test", outcome="left_message")
    services.change_status(referral, Status.DECLINED, actor="test", decline_reason="not_covered")
    html = client_for("coordinator").get(reverse("referrals:detail", args=[referral.pk])).content.decode()
    assert "Declined</strong>" in html and "· Insurance not accepted" in html
    assert "Contact with the patient</strong>: Left a message" in html


def test_intake_form_creates_a_referral_and_warns_of_duplicates(client_for, referring_provider, site):
    c = client_for("coordinator")
    form = {
        "patient_first_name": "Ada",
        "patient_last_name": "Lovelace",
        "patient_dob": "1950-12-10",
        "patient_phone": "6145550142",
        "referrer": f"{referring_provider.display_name} — Maple Family Medicine (NPI {referring_provider.npi})",
        "site": site.pk,
        "urgency": "urgent",
        "channel": "fax",
        "icd10_codes": "m17.11, S83.511A",
        "assigned_to": c.user.pk,
    }
    assert (
        f'value="{c.user.pk}" selected' in c.get(reverse("referrals:intake")).content.decode()
    )  # me, by default
    response = c.post(reverse("referrals:intake"), form)
    referral = Referral.objects.get()
    assert response["Location"] == reverse("referrals:detail", args=[referral.pk])
    assert referral.referring_provider == referring_provider and referral.icd10_codes == "M17.11, S83.511A"
    assert referral.assigned_to == c.user
    again = c.post(reverse("referrals:intake"), form)
    assert again.status_code == 200 and b"Possible duplicate" in again.content
    assert Referral.objects.count() == 1
    confirmed = c.post(reverse("referrals:intake"), {**form, "confirm_not_duplicate": "on"})
    assert confirmed.status_code == 302 and Referral.objects.count() == 2


def test_intake_form_shows_clear_errors(client_for):
    c = client_for("coordinator")
    response = c.post(
        reverse("referrals:intake"),
        {
            "patient_first_name": "A",
            "patient_dob": "2099-01-01",
            "referrer": "Dr Nobody",
            "urgency": "routine",
            "channel": "fax",
            "icd10_codes": "knee",
        },
    )
    html = response.content.decode()
    assert "This field is required" in html  # last name
    assert "Not ICD-10 codes: KNEE" in html
    assert not Referral.objects.exists()


def test_an_unknown_referrer_from_the_form_is_flagged_and_matched_later(
    client_for, referring_provider, django_capture_on_commit_callbacks
):
    c = client_for("coordinator")
    c.post(
        reverse("referrals:intake"),
        {
            "patient_first_name": "Ada",
            "patient_last_name": "Lovelace",
            "patient_dob": "1950-12-10",
            "referrer": "Frank Family",
            "referrer_fax": "614-555-0102",
            "urgency": "routine",
            "channel": "fax",
        },
    )
    referral = Referral.objects.get()
    assert referral.referrer_to_match
    html = c.get(reverse("referrals:detail", args=[referral.pk])).content.decode()
    assert "Match the referrer" in html and "Frank Family" in html
    assert not referral.notifications.exists()  # no office to tell yet
    with django_capture_on_commit_callbacks(execute=True):
        c.post(reverse("referrals:match_referrer", args=[referral.pk]), {"provider": referring_provider.pk})
    referral.refresh_from_db()
    assert referral.referring_provider == referring_provider and not referral.referrer_to_match
    # Now that we know the office, it gets the acknowledgement it could not have before.
    assert list(referral.notifications.values_list("milestone", flat=True)) == ["received"]


def test_queue_filters_and_bulk_actions(client_for, make_referral, make_user):
    coordinator = client_for("coordinator")
    a = make_referral(urgency="urgent")
    b = make_referral(patient_last_name="Second")
    services.change_status(b, Status.ACCEPTED, actor="test")
    content = coordinator.get(reverse("referrals:queue"), {"view": "unassigned"}).content.decode()
    assert content.index("Quackenbush") < content.index("Second")  # urgent first
    found = coordinator.post(reverse("referrals:queue"), {"patient": "second"}).content.decode()
    assert "Second" in found and "Quackenbush" not in found
    coordinator.post(
        reverse("referrals:bulk"), {"ids": [a.pk, b.pk], "action": "assign", "assign_to": coordinator.user.pk}
    )
    accepted = coordinator.post(
        reverse("referrals:bulk"), {"ids": [a.pk, b.pk], "action": "accept"}, follow=True
    )
    assert set(Referral.objects.values_list("assigned_to", "status")) == {(coordinator.user.pk, "accepted")}
    # The one that could not be accepted is named, with why.
    assert f"left as they were: #{b.pk} (accepted)" in accepted.content.decode()
    nav = coordinator.get(reverse("core:home")).content.decode()
    assert re.search(r'title="assigned to me">2<', nav)
    # "nobody" unassigns; nothing ticked says so; an outside "next" is not followed.
    bulk = reverse("referrals:bulk")
    unassigned = coordinator.post(bulk, {"ids": [a.pk], "action": "assign", "assign_to": ""}, follow=True)
    assert "1 referral(s) unassigned." in unassigned.content.decode()
    assert Referral.objects.get(pk=a.pk).assigned_to is None
    assert "Tick the referrals" in coordinator.post(bulk, {"action": "accept"}, follow=True).content.decode()
    away = coordinator.post(bulk, {"ids": [a.pk], "action": "accept", "next": "https://evil.example/"})
    assert away["Location"] == reverse("referrals:queue")


def test_queue_query_count_does_not_grow(client_for, make_referral, django_assert_num_queries):
    c = client_for("coordinator")
    make_referral()
    c.get(reverse("referrals:queue"))
    with django_assert_num_queries(13) as ctx:
        c.get(reverse("referrals:queue"))
    for i in range(15):
        make_referral(patient_last_name=f"Patient{i}")
    with django_assert_num_queries(len(ctx.captured_queries)):
        c.get(reverse("referrals:queue"))


def test_open_referrals_carry_their_urgency_rank_and_lose_it_when_they_end(make_referral):
    stat, urgent, routine = (make_referral(urgency=u) for u in ("stat", "urgent", "routine"))
    ranks = dict(Referral.objects.values_list("pk", "queue_rank"))
    assert [ranks[r.pk] for r in (stat, urgent, routine)] == [0, 1, 2]
    services.change_status(urgent, Status.DECLINED, actor="test", decline_reason="not_covered")
    assert Referral.objects.get(pk=urgent.pk).queue_rank is None


def test_every_queue_view_and_order_pages_through_the_same_referrals(make_referral, make_user, client):
    from liaison.referrals.selectors import QUEUE_VIEWS, SORTS, QueueFilters, queue_paginator, work_queue

    coordinator = make_user("coordinator")
    client.force_login(coordinator)
    made = [
        make_referral(patient_last_name=f"Patient{i}", urgency=("routine", "urgent", "stat")[i % 3])
        for i in range(8)
    ]
    services.change_status(made[1], Status.ACCEPTED, actor="test")
    services.change_status(made[2], Status.DECLINED, actor="test", decline_reason="not_covered")
    for view in QUEUE_VIEWS:
        for sort in SORTS:
            f = QueueFilters(view=view, sort=sort)
            paginator = queue_paginator(coordinator, f, per_page=3)
            paged = [r.pk for n in paginator.page_range for r in paginator.page(n).object_list]
            expected = list(work_queue(coordinator, f).values_list("pk", flat=True))
            assert paged == expected, (view, sort)
            api = [
                r["id"]
                for page in (1, 2, 3)
                for r in client.get(
                    "/api/v1/referrals", {"view": view, "sort": sort, "page": page, "page_size": 3}
                ).json()["items"]
            ]
            assert api == expected, ("api", view, sort)


def test_documents_are_served_decrypted_to_those_allowed(client_for, referral):
    c = client_for("coordinator")
    upload = c.post(reverse("referrals:upload", args=[referral.pk]), {"document": _pdf("fax.pdf")})
    assert upload.status_code == 302
    doc = referral.documents.get()
    response = c.get(reverse("referrals:document", args=[referral.pk, doc.pk]))
    assert response.content.startswith(b"%PDF") and response["Cache-Control"] == "no-store"
    assert "fax" not in response["Content-Disposition"]
    assert (
        client_for("liaison", email="l2@example.org")
        .get(reverse("referrals:document", args=[referral.pk, doc.pk]))
        .status_code
        == 403
    )


def _pdf(name: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, b"%PDF-1.4\n% a faxed referral\n", content_type="application/pdf")


def test_api_creates_and_moves_a_referral(make_user, referring_provider):
    user = make_user("coordinator")
    _, raw = accounts.create_api_token(user, actor=user, name="ehr")
    from django.test import Client

    c = Client(headers={"Authorization": f"Bearer {raw}"})
    body = {
        **{k: v for k, v in PATIENT.items() if k != "patient_dob"},
        "patient_dob": "1961-04-02",
        "referring_npi": referring_provider.npi,
    }
    created = c.post("/api/v1/referrals", json.dumps(body), content_type="application/json")
    assert created.status_code == 201, created.content
    rid = created.json()["id"]
    assert created.json()["referrer"]["npi"] == referring_provider.npi
    bad = c.post(
        f"/api/v1/referrals/{rid}/status", json.dumps({"status": "seen"}), content_type="application/json"
    )
    assert bad.status_code == 400 and "cannot become seen" in bad.json()["errors"]["__all__"][0]
    ok = c.post(
        f"/api/v1/referrals/{rid}/status", json.dumps({"status": "accepted"}), content_type="application/json"
    )
    assert ok.json()["status"] == "accepted" and "scheduled" in ok.json()["next_statuses"]
    events = c.get(f"/api/v1/referrals/{rid}/events").json()
    assert [e["to_status"] for e in events if e["kind"] == "status"] == ["received", "accepted"]
    invalid = c.post(
        "/api/v1/referrals",
        json.dumps({**body, "patient_dob": "1890-01-01"}),
        content_type="application/json",
    )
    assert invalid.status_code == 400 and "patient_dob" in invalid.json()["errors"]


def test_a_physician_breaks_the_glass_with_a_reason_and_the_admins_are_told(
    client_for, make_user, make_referral, other_physician, our_physician, django_capture_on_commit_callbacks
):
    from django.core import mail

    make_user("admin", email="boss@example.org")
    theirs = make_referral(referred_to_physician=other_physician)
    c = client_for("physician", provider=our_physician)
    page = c.get(reverse("referrals:detail", args=[theirs.pk]))
    assert (
        page.status_code == 404 and b"emergency access" in page.content and b"Quackenbush" not in page.content
    )
    assert c.post(reverse("referrals:emergency_access", args=[theirs.pk]), {"reason": "x"}).status_code == 400
    with django_capture_on_commit_callbacks(execute=True):
        c.post(
            reverse("referrals:emergency_access", args=[theirs.pk]),
            {"reason": "Covering for Dr Surgeon on call tonight"},
        )
    assert b"Quackenbush" in c.get(reverse("referrals:detail", args=[theirs.pk])).content
    event = AuditEvent.objects.get(action="emergency_access")
    assert event.actor == c.user and "Covering" not in str(event.changes)
    assert mail.outbox[-1].to == ["boss@example.org"] and "Quackenbush" not in mail.outbox[-1].body
    from liaison.referrals.models import EmergencyAccess

    EmergencyAccess.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert c.get(reverse("referrals:detail", args=[theirs.pk])).status_code == 404


def test_only_physicians_break_the_glass(client_for, referral):
    for role in ("liaison", "analyst"):
        c = client_for(role, email=f"{role}2@example.org")
        assert (
            c.post(
                reverse("referrals:emergency_access", args=[referral.pk]),
                {"reason": "I really want to see it"},
            ).status_code
            == 403
        )


def test_sorting_by_appointment_puts_the_referrals_without_one_last(client_for, make_referral):
    waiting, booked = make_referral(), make_referral(patient_last_name="Second")
    services.change_status(booked, Status.ACCEPTED, actor="test")
    services.change_status(
        booked, Status.SCHEDULED, actor="test", appointment_at=timezone.now() + dt.timedelta(days=1)
    )
    html = client_for("coordinator").get(reverse("referrals:queue"), {"sort": "appointment"}).content.decode()
    assert html.index(f"#{booked.pk}</small>") < html.index(f"#{waiting.pk}</small>")


def test_the_next_steps_are_buttons_that_say_what_they_do(client_for, make_referral):
    referral = make_referral()
    c = client_for("coordinator")
    html = c.get(reverse("referrals:detail", args=[referral.pk])).content.decode()
    for verb in (">Accept</button>", ">Decline</button>", ">Cancel the referral</button>"):
        assert verb in html
    assert ">Accepted</button>" not in html
    services.change_status(referral, Status.ACCEPTED, actor="test")
    services.change_status(referral, Status.SCHEDULED, actor="test", appointment_at=timezone.now())
    html = c.get(reverse("referrals:detail", args=[referral.pk])).content.decode()
    assert (
        ">Reschedule</button>" in html
        and ">Mark seen</button>" in html
        and ">Record a no-show</button>" in html
    )


def test_a_referrer_with_several_offices_is_asked_which_one_sent_it(
    client_for, make_referral, referring_provider, referring_practice, django_capture_on_commit_callbacks
):
    second = directory.create_location(
        referring_practice,
        actor="test",
        address_line1="200 Elm St",
        city="Columbus",
        state="OH",
        zip_code="43215",
        fax="614-555-0199",
    )
    referring_provider.locations.add(second)
    referral = make_referral()
    assert referral.referring_location is None  # two offices: the referral did not say which
    c = client_for("coordinator")
    html = c.get(reverse("referrals:detail", args=[referral.pk])).content.decode()
    assert "Which office sent it?" in html and "200 Elm St" in html
    with django_capture_on_commit_callbacks(execute=True):
        c.post(
            reverse("referrals:match_referrer", args=[referral.pk]),
            {"provider": referring_provider.pk, "location": second.pk},
        )
    referral.refresh_from_db()
    assert referral.referring_location == second
    # The office now known gets the acknowledgement it could not get before.
    assert list(referral.notifications.values_list("milestone", "recipient")) == [
        ("received", "(614) 555-0199")
    ]
    assert (
        "Which office sent it?" not in c.get(reverse("referrals:detail", args=[referral.pk])).content.decode()
    )


def test_a_referrer_s_page_leads_a_coordinator_to_its_referrals(
    client_for, make_referral, referring_provider
):
    from liaison.directory.models import Provider

    other = Provider.objects.create(first_name="Olive", last_name="Other", npi=make_npi(77))
    mine = make_referral()
    theirs = make_referral(patient_last_name="Second")
    Referral.objects.filter(pk=theirs.pk).update(referring_provider=other)
    c = client_for("coordinator")
    page = c.get(reverse("directory:provider", args=[referring_provider.pk])).content.decode()
    link = f"/referrals/?referrer={referring_provider.pk}"
    assert link in page
    queue = c.get(link).content.decode()
    assert f"#{mine.pk}</small>" in queue and f"#{theirs.pk}</small>" not in queue
    assert "Referrals from" in queue and referring_provider.display_name in queue
    # A liaison's provider page has no way into the referrals.
    assert (
        "/referrals/?referrer"
        not in client_for("liaison")
        .get(reverse("directory:provider", args=[referring_provider.pk]))
        .content.decode()
    )
