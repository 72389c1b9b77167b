"""The outreach and feedback API: every role's allowed and forbidden paths, the ledger and the
over-limit confirmation, clear 400s, no patient data in any payload."""

import json
from datetime import date

import pytest
from django.test import Client

from liaison.accounts import services as accounts
from liaison.feedback.models import Issue
from liaison.outreach import services
from liaison.outreach.models import Activity, Task
from tests.conftest import ROLES
from tests.outreach.conftest import local, lunch

WRITERS = ["admin", "manager", "liaison", "coordinator"]
READERS = [*WRITERS, "analyst"]


@pytest.fixture
def api_for(make_user):
    def make(role, **kw):
        kw.setdefault("email", f"{role}-api@example.org")
        user = make_user(role, **kw)
        _, raw = accounts.create_api_token(user, actor=user, name="tests")
        c = Client(headers={"Authorization": f"Bearer {raw}"})
        c.user = user
        return c

    return make


def post(c, url, body):
    return c.post(url, json.dumps(body), content_type="application/json")


def patch(c, url, body):
    return c.patch(url, json.dumps(body), content_type="application/json")


def lunch_body(account, office, our_doctors, **kw):
    return {
        "account_id": account.pk,
        "kind": "lunch",
        "occurred_at": "2026-03-10T12:00:00-05:00",
        "our_physician_ids": [d.pk for d in our_doctors],
        "provider_ids": [office.dr_family.pk, office.dr_second.pk],
        "contact_ids": [office.nurse.pk],
        "new_attendees": [{"first_name": "Rhea", "last_name": "Front", "role": "receptionist"}],
        "cost": "120.00",
        "outcome": "Good talk about the fracture clinic",
        "follow_up": {"title": "Send the fax form", "due_on": "2026-03-17", "assignee_id": account.owner_id},
        **kw,
    }


@pytest.mark.parametrize("role", WRITERS)
def test_writers_log_a_lunch_with_both_sides_and_a_follow_up(api_for, role, account, office, our_doctors):
    c = api_for(role)
    r = post(c, "/api/v1/activities", lunch_body(account, office, our_doctors))
    assert r.status_code == 201, r.content
    body = r.json()
    assert {a["name"] for a in body["attendees"] if not a["is_ours"]} == {
        "Frank Family, MD",
        "Sam Second, DO",
        "Nora Nurse",
        "Rhea Front",
    }
    assert sorted(s["amount"] for s in body["ledger"]) == ["30.00", "30.00"]
    assert len(body["follow_up_task_ids"]) == 1 and body["status"] == "completed"


@pytest.mark.parametrize("role", ["analyst", "physician"])
def test_analysts_and_physicians_cannot_log_activities(api_for, role, account, office, our_doctors):
    r = post(api_for(role), "/api/v1/activities", lunch_body(account, office, our_doctors))
    assert r.status_code in (403, 404)
    assert not Activity.objects.exists()


def test_going_over_the_limit_is_a_400_until_confirmed(api_for, account, office, our_doctors):
    c = api_for("liaison")
    lunch(account, office, our_doctors, when=local(2026, 2, 1), cost="2100.00")  # $525 each
    r = post(c, "/api/v1/activities", lunch_body(account, office, our_doctors))
    assert r.status_code == 400
    assert "over the $535.00 limit" in r.json()["errors"]["cost"][0]
    r = post(c, "/api/v1/activities", lunch_body(account, office, our_doctors, confirm_over_limit=True))
    assert r.status_code == 201 and any("over the" in w for w in r.json()["limit_warnings"])


def test_bad_input_gets_named_field_errors(api_for, account):
    c = api_for("liaison")
    r = post(
        c,
        "/api/v1/activities",
        {"account_id": account.pk, "kind": "visit", "provider_ids": [999999], "cost": "-5"},
    )
    assert r.status_code == 400 and "cost" in r.json()["errors"]
    r = post(c, "/api/v1/activities", {"account_id": account.pk, "kind": "visit", "provider_ids": [999999]})
    assert r.status_code == 400 and r.json()["errors"] == {"provider_ids": ["Unknown id(s): 999999."]}
    r = post(c, "/api/v1/activities", {"kind": "visit"})
    assert r.status_code == 400 and "account" in r.json()["errors"]
    r = post(c, "/api/v1/activities", {"account_id": 999999, "kind": "visit"})
    assert r.status_code == 404


def test_a_physician_reads_only_the_activities_they_attended_and_their_tasks(
    api_for, account, office, our_doctors, liaison
):
    attended = lunch(account, office, our_doctors[:1], when=local(2026, 3, 1))
    other = lunch(account, office, our_doctors[1:], when=local(2026, 3, 2))
    c = api_for("physician", provider=our_doctors[0])
    services.create_task(
        actor=liaison, title="Call Dr Family", due_on=date(2026, 3, 9), assignee=c.user, account=account
    )
    services.create_task(
        actor=liaison, title="Not theirs", due_on=date(2026, 3, 9), assignee=liaison, account=account
    )
    ids = [a["id"] for a in c.get("/api/v1/activities").json()["items"]]
    assert ids == [attended.pk]
    assert c.get(f"/api/v1/activities/{other.pk}").status_code == 404
    assert [t["title"] for t in c.get("/api/v1/tasks", {"assignee": ""}).json()["items"]] == [
        "Call Dr Family"
    ]
    assert c.get("/api/v1/accounts").status_code == 403
    assert c.get("/api/v1/issues").status_code == 403
    task = Task.objects.get(title="Call Dr Family")
    assert patch(c, f"/api/v1/tasks/{task.pk}", {"status": "done"}).json()["status"] == "done"


def test_a_liaison_edits_only_their_own_activities_and_accounts(api_for, account, office, make_user):
    other = make_user("liaison", email="other@example.org")
    theirs = services.log_activity(actor=other, account=account, kind="visit", contacts=[office.nurse])
    c = api_for("liaison", email="third@example.org")
    assert patch(c, f"/api/v1/activities/{theirs.pk}", {"outcome": "x"}).status_code == 403
    assert c.get(f"/api/v1/activities/{theirs.pk}").status_code == 200  # reading is fine
    assert patch(c, f"/api/v1/accounts/{account.pk}", {"tier": "A"}).status_code == 403
    owner = Client()
    owner.force_login(account.owner)
    r = patch(
        owner,
        f"/api/v1/accounts/{account.pk}",
        {"tier": "A", "stage": "at_risk", "stage_reason": "long chat"},
    )
    assert r.status_code == 200 and r.json()["tier"] == "A" and r.json()["stage"] == "at_risk"
    assert r.json()["stage_history"][-1]["reason"] == "long chat"
    # Only a manager reassigns.
    assert patch(owner, f"/api/v1/accounts/{account.pk}", {"owner_id": other.pk}).status_code == 403
    assert (
        patch(api_for("manager"), f"/api/v1/accounts/{account.pk}", {"owner_id": other.pk}).json()["owner_id"]
        == other.pk
    )


@pytest.mark.parametrize("role", READERS)
def test_readers_list_accounts_with_filters(api_for, role, account):
    body = api_for(role).get("/api/v1/accounts", {"stage": "target", "q": "maple"}).json()
    assert body["count"] == 1 and body["items"][0]["practice_name"] == "Maple Family Medicine"


def test_accounts_are_added_to_the_pipeline(api_for, office):
    c = api_for("liaison")
    r = post(c, "/api/v1/accounts", {"practice_id": office.practice.pk, "tier": "B", "note": "new PCP group"})
    assert r.status_code == 201 and r.json()["stage"] == "target" and r.json()["tier"] == "B"
    assert r.json()["stage_history"][0]["reason"] == "new PCP group"
    assert (
        post(api_for("analyst"), "/api/v1/accounts", {"practice_id": office.practice.pk}).status_code == 403
    )


def test_tasks_are_created_completed_and_reassigned(api_for, account, make_user):
    c = api_for("coordinator")
    r = post(
        c,
        "/api/v1/tasks",
        {"title": "Fax the pads", "due_on": "2026-04-01", "assignee_id": c.user.pk, "account_id": account.pk},
    )
    assert r.status_code == 201
    tid = r.json()["id"]
    assert patch(c, f"/api/v1/tasks/{tid}", {"due_on": "2026-04-03"}).json()["due_on"] == "2026-04-03"
    assert patch(c, f"/api/v1/tasks/{tid}", {"status": "done"}).json()["status"] == "done"
    analyst = make_user("analyst", email="an@example.org")
    r = post(c, "/api/v1/tasks", {"title": "x", "due_on": "2026-04-01", "assignee_id": analyst.pk})
    assert r.status_code == 400 and "assignee" in r.json()["errors"]


PHI_OUTCOME = "Omar asked about patient Jane Roe, DOB 03/04/1956, MRN 448812"
PHI_NEXT_STEP = "Call Casey re Jane Roe DOB 03/04/1956"


def test_outreach_texts_refuse_patient_identifiers(api_for, account, office, our_doctors):
    c = api_for("liaison")
    r = post(c, "/api/v1/activities", lunch_body(account, office, our_doctors, outcome=PHI_OUTCOME))
    assert r.status_code == 400 and "date of birth" in r.json()["errors"]["outcome"][0]
    for field in ("topics", "clinical_questions", "next_step"):
        r = post(c, "/api/v1/activities", lunch_body(account, office, our_doctors, **{field: PHI_NEXT_STEP}))
        assert r.status_code == 400 and "Remove patient identifiers" in r.json()["errors"][field][0]
    follow_up = {"title": "Chart MRN 448812", "due_on": "2026-03-17", "assignee_id": account.owner_id}
    r = post(c, "/api/v1/activities", lunch_body(account, office, our_doctors, follow_up=follow_up))
    assert r.status_code == 400 and "medical record number" in r.json()["errors"]["follow_up"][0]
    assert not Activity.objects.exists() and not Task.objects.exists()

    r = post(c, "/api/v1/activities", lunch_body(account, office, our_doctors))
    assert r.status_code == 201
    r = patch(c, f"/api/v1/activities/{r.json()['id']}", {"outcome": PHI_OUTCOME})
    assert r.status_code == 400 and "outcome" in r.json()["errors"]
    task = Task.objects.get()
    r = post(c, "/api/v1/tasks", {"title": PHI_NEXT_STEP, "due_on": "2026-04-01", "assignee_id": c.user.pk})
    assert r.status_code == 400 and "date of birth" in r.json()["errors"]["title"][0]
    r = patch(c, f"/api/v1/tasks/{task.pk}", {"details": "her MRN is 448812"})
    assert r.status_code == 400 and "details" in r.json()["errors"]
    m = api_for("manager")
    r = patch(m, f"/api/v1/accounts/{account.pk}", {"potential": "sends Jane Roe DOB 03/04/1956"})
    assert r.status_code == 400 and "potential" in r.json()["errors"]
    r = patch(m, f"/api/v1/accounts/{account.pk}", {"stage": "lapsed", "stage_reason": "lost MRN 448812"})
    assert r.status_code == 400 and "reason" in r.json()["errors"]
    assert Task.objects.count() == 1 and Activity.objects.get().outcome != PHI_OUTCOME


def test_a_coordinator_logs_an_issue_and_follows_it_to_the_office_being_told(api_for, office):
    c = api_for("coordinator")
    r = post(
        c,
        "/api/v1/issues",
        {"practice_id": office.practice.pk, "category": "access", "severity": "high", "summary": "Waited 3 weeks for a callback",
         "reporter_id": office.coordinator.pk},
    )  # fmt: skip
    assert r.status_code == 201, r.content
    issue = r.json()
    assert issue["status"] == "open" and issue["due_on"] and issue["events"][0]["kind"] == "opened"
    url = f"/api/v1/issues/{issue['id']}"
    assert patch(c, url, {"status": "resolved"}).status_code == 400  # needs a resolution
    assert (
        patch(c, url, {"status": "resolved", "resolution": "New scheduler hired"}).json()["status"]
        == "resolved"
    )
    done = patch(c, url, {"office_informed": {"how": "phone", "contact_id": office.coordinator.pk}}).json()
    assert done["status"] == "closed" and done["office_informed_at"]
    assert [e["kind"] for e in done["events"]] == ["opened", "status", "office_informed", "status"]


def test_issue_texts_refuse_patient_identifiers(api_for, office):
    r = post(
        api_for("liaison"),
        "/api/v1/issues",
        {"practice_id": office.practice.pk, "category": "clinical", "summary": "Pt DOB 01/02/1950 lost"},
    )
    assert r.status_code == 400 and "date of birth" in r.json()["errors"]["summary"][0]
    assert not Issue.objects.exists()


@pytest.mark.parametrize("role", ["analyst", "physician"])
def test_analysts_and_physicians_cannot_log_issues(api_for, role, office):
    r = post(
        api_for(role),
        "/api/v1/issues",
        {"practice_id": office.practice.pk, "category": "other", "summary": "x"},
    )
    assert r.status_code == 403


PATIENT_WORDS = ("patient", "mrn", "dob", "birth", "ssn", "diagnosis")


def _keys(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _keys(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _keys(v)


def test_no_outreach_payload_has_a_patient_field(api_for, account, office, our_doctors):
    lunch(account, office, our_doctors, when=local(2026, 3, 1))
    c = api_for("liaison")
    post(
        c,
        "/api/v1/issues",
        {"practice_id": office.practice.pk, "category": "other", "summary": "Fax line busy"},
    )
    for url in [
        "/api/v1/activities",
        "/api/v1/accounts",
        "/api/v1/tasks?assignee=",
        "/api/v1/issues?status=all",
    ]:
        body = c.get(url).json()
        assert body["count"] >= 0
        assert not [k for k in _keys(body) if any(w in k.lower() for w in PATIENT_WORDS)], url


def test_the_openapi_schema_lists_the_outreach_endpoints(api_for):
    paths = api_for("analyst").get("/api/v1/openapi.json").json()["paths"]
    assert {"/api/v1/activities", "/api/v1/tasks", "/api/v1/accounts", "/api/v1/issues"} <= set(paths)


@pytest.mark.parametrize("role", ROLES)
def test_every_role_gets_a_clear_answer_never_a_500(api_for, role, account):
    c = api_for(role)
    for url in [
        "/api/v1/activities",
        "/api/v1/tasks",
        "/api/v1/accounts",
        "/api/v1/issues",
        f"/api/v1/accounts/{account.pk}",
    ]:
        assert c.get(url).status_code in (200, 403, 404)
