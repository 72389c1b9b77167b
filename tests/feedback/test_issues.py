"""Issues raised by referring offices: a coordinator logs one, it is followed to resolution and
the office is told; open issues show on the account page and in the manager's view."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from liaison.feedback import selectors, services
from liaison.feedback.models import Issue, IssueStatus
from liaison.feedback.validators import no_patient_identifiers


def test_a_coordinator_logs_an_issue_from_the_form_which_warns_about_patient_data(
    client_for, office, account
):
    c = client_for("coordinator")
    url = reverse("feedback:issue_new") + f"?practice={office.practice.pk}"
    page = c.get(url).content.decode()
    assert "Do not enter patient names or identifiers" in page
    response = c.post(
        url,
        {"reporter": office.coordinator.pk, "category": "access", "severity": "high", "summary": "No callback for 2 weeks",
         "details": "Three referrals last month waited for a call.", "assignee": c.user.pk, "due_on": ""},
    )  # fmt: skip
    issue = Issue.objects.get()
    assert response["Location"] == reverse("feedback:issue", args=[issue.pk])
    assert issue.due_on == timezone.localdate() + timedelta(days=3)  # high: 3 days
    assert issue.opened_by == c.user and issue.status == IssueStatus.OPEN
    account_page = c.get(reverse("outreach:account", args=[account.pk])).content.decode()
    assert 'id="open-issues"' in account_page and "No callback for 2 weeks" in account_page


def test_patient_identifiers_are_refused_with_a_clear_message(client_for, office):
    c = client_for("liaison")
    url = reverse("feedback:issue_new") + f"?practice={office.practice.pk}"
    response = c.post(
        url, {"category": "clinical", "severity": "low", "summary": "Wrong report for MRN 443322"}
    )
    assert response.status_code == 200 and b"medical record number" in response.content
    assert not Issue.objects.exists()


@pytest.mark.parametrize(
    "text",
    [
        "DOB 1/2/1950",
        "date of birth unknown",
        "SSN 123-45-6789",
        "123-45-6789",
        "member ID: XK1234",
        "Medical record no. 55",
    ],
)
def test_the_validator_catches_obvious_identifiers(text):
    with pytest.raises(ValidationError):
        no_patient_identifiers(text)


@pytest.mark.parametrize(
    "text",
    ["Fax line busy on Mondays", "Waited 3 weeks for the consult note", "Billing sent to the wrong office"],
)
def test_the_validator_lets_ordinary_complaints_through(text):
    no_patient_identifiers(text)


def test_an_issue_goes_open_in_progress_resolved_and_closes_when_the_office_is_told(client_for, office):
    c = client_for("manager")
    issue = services.log_issue(
        actor=c.user, practice=office.practice, category="communication", summary="No consult notes"
    )
    url = lambda action: reverse("feedback:issue_action", args=[issue.pk, action])  # noqa: E731
    c.post(url("status"), {"status": "in_progress", "note": "called the office"})
    c.post(url("status"), {"status": "resolved", "resolution": ""})  # refused: no resolution
    issue.refresh_from_db()
    assert issue.status == IssueStatus.IN_PROGRESS
    c.post(url("status"), {"status": "resolved", "resolution": "Notes now faxed the same day"})
    issue.refresh_from_db()
    assert issue.status == IssueStatus.RESOLVED and issue.resolved_at
    page = c.get(reverse("feedback:issue", args=[issue.pk])).content.decode()
    assert "Tell the office" in page
    c.post(url("informed"), {"how": "visit", "contact": office.manager.pk, "note": "told Olga"})
    issue.refresh_from_db()
    assert issue.status == IssueStatus.CLOSED and issue.office_informed_at
    kinds = list(issue.events.values_list("kind", "to_status"))
    assert kinds == [
        ("opened", "open"),
        ("status", "in_progress"),
        ("status", "resolved"),
        ("office_informed", ""),
        ("status", "closed"),
    ]


def test_closing_needs_the_office_informed_step(office):
    issue = services.log_issue(actor="t", practice=office.practice, category="other", summary="x")
    with pytest.raises(ValidationError):
        services.change_issue_status(issue, IssueStatus.CLOSED, actor="t")
    with pytest.raises(ValidationError):
        services.record_office_informed(issue, actor="t", how="phone")


def test_a_reporter_must_work_at_the_practice(office, our_practice):
    from liaison.directory import services as directory

    stranger = directory.create_contact(our_practice, actor="t", first_name="Ours")
    with pytest.raises(ValidationError) as exc:
        services.log_issue(
            actor="t", practice=office.practice, category="other", summary="x", reporter=stranger
        )
    assert "reporter" in exc.value.message_dict


def test_the_manager_view_filters_and_counts(client_for, office, django_assert_num_queries):
    c = client_for("manager")
    old = services.log_issue(
        actor="t",
        practice=office.practice,
        category="billing",
        summary="Old bill",
        due_on=timezone.localdate() - timedelta(days=2),
    )
    services.log_issue(
        actor="t", practice=office.practice, category="access", summary="Phones", assignee=c.user
    )
    page = c.get(reverse("feedback:issues")).content.decode()
    assert "Old bill" in page and "Phones" in page
    assert "Old bill" in c.get(reverse("feedback:issues"), {"overdue": "on"}).content.decode()
    assert "Phones" not in c.get(reverse("feedback:issues"), {"overdue": "on"}).content.decode()
    assert "Old bill" not in c.get(reverse("feedback:issues"), {"assignee": "me"}).content.decode()
    assert selectors.issue_counts() == {"open": 2, "overdue": 1, "awaiting_office": 0}
    c.get(reverse("feedback:issues"))
    with django_assert_num_queries(7):  # with the referral counts in the navigation
        c.get(reverse("feedback:issues"))
    for i in range(5):
        services.log_issue(
            actor="t",
            practice=office.practice,
            category="other",
            summary=f"More {i}",
            assignee=c.user,
            reporter=office.nurse,
        )
    with django_assert_num_queries(7):
        c.get(reverse("feedback:issues"))
    assert old.pk


@pytest.mark.parametrize("role", ["physician"])
def test_physicians_do_not_use_the_issue_pages(client_for, role, office):
    issue = services.log_issue(actor="t", practice=office.practice, category="other", summary="x")
    c = client_for(role)
    assert c.get(reverse("feedback:issues")).status_code == 403
    assert c.get(reverse("feedback:issue", args=[issue.pk])).status_code == 403


def test_an_analyst_reads_issues_but_cannot_change_them(client_for, office):
    issue = services.log_issue(actor="t", practice=office.practice, category="other", summary="x")
    c = client_for("analyst")
    assert c.get(reverse("feedback:issue", args=[issue.pk])).status_code == 200
    assert (
        c.post(reverse("feedback:issue_action", args=[issue.pk, "note"]), {"note": "hi"}).status_code == 403
    )
    assert c.get(reverse("feedback:issue_new") + f"?practice={office.practice.pk}").status_code == 403
