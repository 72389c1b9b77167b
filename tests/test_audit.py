"""The audit trail: every write records who/what/when, hash-chained; verify finds tampering."""

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse

from liaison.audit.models import AuditEvent, AuditHead
from liaison.audit.services import record, verify_chain
from liaison.directory import services
from tests.conftest import ROLES


@pytest.fixture
def chain(referring_provider):
    """A few real events (from the fixtures' service calls) plus two more."""
    services.update_provider(referring_provider, actor="test", credential="DO")
    services.update_provider(referring_provider, actor="test", notes="likes early meetings")
    return list(AuditEvent.objects.order_by("seq"))


def test_each_service_write_records_actor_action_object_and_changed_fields(make_user, referring_practice):
    user = make_user("manager")
    services.update_practice(
        referring_practice, actor=user, name="Maple Family Practice", website="https://maple.example"
    )
    event = AuditEvent.objects.order_by("-seq").first()
    assert (event.actor, event.action, event.object_type, event.object_id) == (
        user,
        "update",
        "directory.practice",
        str(referring_practice.pk),
    )
    assert event.changes == {
        "name": ["Maple Family Medicine", "Maple Family Practice"],
        "website": ["", "https://maple.example"],
    }


def test_an_update_that_changes_nothing_writes_nothing(referring_practice):
    before = AuditEvent.objects.count()
    services.update_practice(referring_practice, actor="test", name=referring_practice.name)
    assert AuditEvent.objects.count() == before


def test_events_carry_the_request_id(client_for, referring_practice):
    c = client_for("manager")
    response = c.post(
        reverse("directory:practice_edit", args=[referring_practice.pk]),
        {"name": "Renamed Practice", "is_active": "on"},
        headers={"X-Request-ID": "req-1234567890"},
    )
    assert response["X-Request-ID"] == "req-1234567890"
    assert AuditEvent.objects.filter(action="update", request_id="req-1234567890").exists()


def test_phi_fields_are_named_without_their_values(db):
    event = record(
        "test", "update", object_type="referrals.referral", object_id="1", changes={"a": 1}, phi=True
    )
    assert event.phi
    from liaison.audit.services import diff

    assert diff(
        {"patient_name": "Jane Doe", "urgency": "routine"},
        {"patient_name": "Jane Roe", "urgency": "urgent"},
        ["patient_name"],
    ) == {
        "patient_name": "(patient data changed)",
        "urgency": ["routine", "urgent"],
    }


def test_the_chain_verifies(chain):
    result = verify_chain()
    assert result.ok and result.checked == len(chain)


def _raw(sql, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_verify_names_an_altered_row(chain):
    victim = chain[2]
    _raw("UPDATE audit_auditevent SET actor_label = %s WHERE id = %s", ["someone-else", victim.pk])
    result = verify_chain()
    assert not result.ok
    assert result.problem.seq == victim.seq and "altered" in result.problem.reason


def test_verify_names_the_row_after_a_deleted_one(chain):
    victim = chain[2]
    _raw("DELETE FROM audit_auditevent WHERE id = %s", [victim.pk])
    result = verify_chain()
    assert result.problem.seq == victim.seq + 1
    assert f"#{victim.seq} to #{victim.seq} are missing" in result.problem.reason


def test_verify_notices_rows_deleted_at_the_end(chain):
    _raw("DELETE FROM audit_auditevent WHERE id = %s", [chain[-1].pk])
    result = verify_chain()
    assert not result.ok and "last rows were deleted" in result.problem.reason


def test_verify_notices_a_rehashed_row(chain):
    """Someone recomputes the hash of the row they edited: the next row no longer links to it."""
    victim = AuditEvent.objects.get(pk=chain[1].pk)
    victim.actor_label = "forger"
    victim.hash = victim.compute_hash()
    AuditEvent.objects.filter(pk=victim.pk).update(actor_label="forger", hash=victim.hash)
    result = verify_chain()
    assert result.problem.seq == chain[2].seq and "does not link" in result.problem.reason


def test_the_verify_command_reports_ok_and_the_first_bad_row(chain, capsys):
    call_command("audit", "verify")
    assert f"audit chain OK: {len(chain)} rows verified" in capsys.readouterr().out
    _raw("UPDATE audit_auditevent SET action = %s WHERE id = %s", ["delete", chain[3].pk])
    with pytest.raises(CommandError, match=f"row #{chain[3].seq} "):
        call_command("audit", "verify")


def test_head_follows_the_chain(chain):
    head = AuditHead.objects.get(pk=1)
    assert (head.seq, head.hash) == (chain[-1].seq, chain[-1].hash)


@pytest.mark.parametrize("role", [r for r in ROLES if r != "admin"])
def test_only_admins_browse_the_audit_trail(client_for, role, chain):
    c = client_for(role)
    assert c.get(reverse("audit:events")).status_code == 403
    assert c.get(reverse("audit:event", args=[chain[0].seq])).status_code == 403


def test_admins_filter_the_audit_trail(client_for, chain, django_assert_max_num_queries):
    c = client_for("admin")
    response = c.get(reverse("audit:events"), {"object_type": "directory.provider", "action": "update"})
    assert response.status_code == 200
    page = response.context["page"]
    assert {e.action for e in page} == {"update"} and len(page) == 2
    detail = c.get(reverse("audit:event", args=[chain[-1].seq])).content.decode()
    assert "likes early meetings" in detail and chain[-1].hash in detail
    with django_assert_max_num_queries(9):
        c.get(reverse("audit:events"))
