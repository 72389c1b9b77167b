"""Satisfaction surveys: emailed with a private link (only its hash kept), answered once on a
public form, NPS per account over time."""

from datetime import datetime, timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from liaison.core.models import JobRun
from liaison.feedback import selectors, services
from liaison.feedback.models import Survey, SurveyInvitation, SurveyResponse


@pytest.fixture
def survey(db):
    return Survey.objects.get()  # from the migration


def _link(message):
    return next(line for line in message.body.splitlines() if "/feedback/s/" in line).strip()


def test_a_survey_is_emailed_with_a_private_link_and_answered_once(
    client_for, office, survey, django_capture_on_commit_callbacks
):
    c = client_for("liaison")
    url = reverse("feedback:survey_send", args=[office.practice.pk])
    assert "Nora Nurse" not in c.get(url).content.decode()  # no email address: not offered
    with django_capture_on_commit_callbacks(execute=True):
        response = c.post(url, {"contacts": [office.coordinator.pk, office.manager.pk]})
    run = JobRun.objects.get()
    assert response["Location"] == reverse("core:job", args=[run.pk])
    run.refresh_from_db()
    assert run.status == "succeeded" and run.result == {"sent": 2, "failed": 0}
    assert sorted(m.to[0] for m in mail.outbox) == ["olga@maple.example", "rita@maple.example"]
    link = _link(mail.outbox[0])
    token = link.rsplit("/", 2)[-2]
    invitation = SurveyInvitation.objects.get(email=mail.outbox[0].to[0])
    assert token not in (invitation.digest or "") and invitation.digest == services.hash_survey_token(token)
    assert "patient" in mail.outbox[0].body  # asks not to include patient details
    public = type(c)()
    path = link.split("testserver", 1)[-1] if "testserver" in link else "/" + link.split("/", 3)[3]
    page = public.get(path)
    assert page.status_code == 200 and b"How easy is it to refer a patient to us?" in page.content
    answer = {
        "nps": "9",
        "q_ease": "5",
        "q_speed": "4",
        "q_communication": "3",
        "q_staff": "",
        "comment": "Faster notes please",
    }
    assert b"Thank you" in public.post(path, answer).content
    response = SurveyResponse.objects.get()
    assert response.nps == 9 and response.answers == {"ease": 5, "speed": 4, "communication": 3}
    assert response.practice == office.practice
    assert public.post(path, answer).status_code == 410  # once only
    assert SurveyResponse.objects.count() == 1


def test_a_comment_with_patient_identifiers_is_refused(office, survey):
    inv = _sent_invitation(office.coordinator, survey)
    with pytest.raises(Exception, match="date of birth"):
        services.submit_survey_response(inv, nps=5, answers={}, comment="My patient, DOB 1/1/1950, waited")


def _sent_invitation(contact, survey, **kw):
    raw, digest = services.new_survey_token()
    inv = SurveyInvitation.objects.create(
        survey=survey, contact=contact, practice=contact.practice, email=contact.email or "x@example.org", digest=digest,
        sent_at=timezone.now(), expires_at=timezone.now() + timedelta(days=30), **kw,
    )  # fmt: skip
    inv.raw = raw
    return inv


def test_an_expired_or_unknown_link_is_closed(client, office, survey):
    inv = _sent_invitation(office.coordinator, survey)
    SurveyInvitation.objects.filter(pk=inv.pk).update(expires_at=timezone.now() - timedelta(days=1))
    assert client.get(reverse("feedback:survey_answer", args=[inv.raw])).status_code == 410
    assert client.get(reverse("feedback:survey_answer", args=["sv_nope"])).status_code == 404


def test_someone_invited_recently_is_not_invited_again(office, survey, liaison):
    run, skipped = services.send_survey(survey, [office.coordinator], actor=liaison)
    assert run is not None and not skipped
    run, skipped = services.send_survey(survey, [office.coordinator, office.nurse], actor=liaison)
    assert run is None and set(skipped) == {office.coordinator, office.nurse}


def test_nps_per_account_over_time(office, survey):
    tz = timezone.get_current_timezone()
    for when, score in [
        (datetime(2025, 11, 5, tzinfo=tz), 4),
        (datetime(2025, 12, 1, tzinfo=tz), 10),
        (datetime(2026, 2, 1, tzinfo=tz), 9),
    ]:
        inv = _sent_invitation(office.manager, survey)
        SurveyResponse.objects.create(
            invitation=inv, practice=office.practice, nps=score, answers={"ease": 4}, submitted_at=when
        )
    rows = selectors.scores_per_practice()
    assert len(rows) == 1
    row = rows[0]
    assert row.responses == 3 and row.last_nps == 9
    assert [(q.quarter, q.responses, q.nps) for q in row.quarters] == [("2025 Q4", 2, 0), ("2026 Q1", 1, 100)]
    assert selectors.nps([10, 9, 8, 3]) == 25


def test_the_survey_pages_by_role(client_for, office, survey):
    analyst = client_for("analyst")
    assert analyst.get(reverse("feedback:surveys")).status_code == 200
    assert analyst.get(reverse("feedback:survey_send", args=[office.practice.pk])).status_code == 403
    assert client_for("physician").get(reverse("feedback:surveys")).status_code == 403
