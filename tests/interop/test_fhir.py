"""FHIR R4 intake: a ServiceRequest built with fhir.resources round-trips to a Task, the sample
Bundles create the expected referral, invalid FHIR gets an OperationOutcome (never a 500), and
only roles that may see patient data get in."""

import datetime as dt
import json

import pytest
from django.test import Client
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task

from liaison.audit.models import AuditEvent
from liaison.referrals import services as referrals
from liaison.referrals.models import Referral, Status
from tests.external import sample

FHIR = "application/fhir+json"


def service_request(referring_npi: str, our_npi: str = "", identifier: str = "SR-2026-0001") -> dict:
    """A referral as a referring EHR would send it, built and validated with fhir.resources."""
    patient = Patient(
        id="pat",
        identifier=[{"type": {"coding": [{"code": "MR"}]}, "system": "urn:ehr:mrn", "value": "MRN-55"}],
        name=[{"use": "official", "family": "Quackenbush", "given": ["Zelda"]}],
        birthDate=dt.date(1961, 4, 2),
        telecom=[{"system": "phone", "value": "614-555-0199", "use": "home"}],
        address=[{"postalCode": "43215"}],
    )
    requester = Practitioner(
        id="ref",
        identifier=[{"system": "http://hl7.org/fhir/sid/us-npi", "value": referring_npi}],
        name=[{"family": "Family", "given": ["Frank"]}],
        telecom=[{"system": "fax", "value": "614-555-0102"}],
    )
    contained = [patient, requester]
    performer = []
    if our_npi:
        contained.append(
            Practitioner(
                id="ours",
                identifier=[{"system": "http://hl7.org/fhir/sid/us-npi", "value": our_npi}],
                name=[{"family": "Bone", "given": ["Olivia"]}],
            )
        )
        performer = [{"reference": "#ours"}]
    sr = ServiceRequest(
        contained=contained,
        identifier=[{"system": "urn:ehr:referrals", "value": identifier}],
        status="active",
        intent="order",
        priority="urgent",
        subject={"reference": "#pat"},
        requester={"reference": "#ref"},
        performer=performer or None,
        reasonCode=[
            {
                "coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M17.11"}],
                "text": "Right knee osteoarthritis, failed injections",
            }
        ],
        insurance=None,
    )
    return json.loads(sr.model_dump_json(exclude_none=True))


def post(client: Client, path: str, body, content_type: str = FHIR):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(path, data, content_type=content_type)


def test_a_service_request_round_trips_to_its_task(token_client, referring_provider, our_physician, site):
    c = token_client("coordinator")

    created = post(c, "/fhir/ServiceRequest", service_request(referring_provider.npi, our_physician.npi))

    assert created.status_code == 201, created.content
    assert created["Content-Type"].startswith("application/fhir+json")
    referral = Referral.objects.get()
    assert created["Location"].endswith(f"/fhir/Task/liaison-{referral.pk}")
    task = Task.model_validate(created.json())
    assert task.status == "received" and task.businessStatus.coding[0].code == "received"
    assert (referral.patient_last_name, referral.patient_first_name) == ("Quackenbush", "Zelda")
    assert referral.patient_dob == dt.date(1961, 4, 2) and referral.patient_mrn == "MRN-55"
    assert referral.patient_phone == "(614) 555-0199" and referral.patient_zip == "43215"
    assert referral.referring_provider == referring_provider and not referral.referrer_to_match
    assert referral.referred_to_physician == our_physician and referral.site == site
    assert referral.urgency == "urgent" and referral.icd10_codes == "M17.11" and referral.channel == "fhir"
    assert referral.reason == "Right knee osteoarthritis, failed injections"
    assert (referral.source_system, referral.external_id) == ("urn:ehr:referrals", "SR-2026-0001")
    assert referral.events.get().actor == c.user

    # The referring system follows it: scheduled shows as in progress with the appointment.
    appointment = dt.datetime(2026, 12, 1, 14, 30, tzinfo=dt.UTC)
    referrals.change_status(referral, Status.ACCEPTED, actor="test")
    referrals.change_status(referral, Status.SCHEDULED, actor="test", appointment_at=appointment)
    read = c.get(created["Location"])
    assert read.status_code == 200
    task = Task.model_validate(read.json())
    assert task.status == "in-progress" and task.businessStatus.coding[0].code == "scheduled"
    assert task.restriction.period.start == appointment
    assert task.identifier[0].value == "SR-2026-0001"
    assert task.owner.identifier.value == our_physician.npi
    assert "Quackenbush" not in read.content.decode()  # the Task carries no demographics
    assert AuditEvent.objects.filter(action="fhir_read", actor=c.user, object_id=str(referral.pk)).exists()


def test_posting_the_same_service_request_again_changes_nothing(token_client, referring_provider):
    c = token_client("coordinator")
    body = service_request(referring_provider.npi)
    assert post(c, "/fhir/ServiceRequest", body).status_code == 201
    events = Referral.objects.get().events.count()

    again = post(c, "/fhir/ServiceRequest", body)

    assert again.status_code == 200
    assert Referral.objects.count() == 1 and Referral.objects.get().events.count() == events


def test_the_sample_bundles_create_the_expected_referral(token_client):
    c = token_client("coordinator")
    first = json.loads(sample("fhir/REF-I12-01-as-fhir-bundle.json").read_text())

    created = post(c, "/fhir/Bundle", first)

    assert created.status_code == 201, created.content
    response = Bundle.model_validate(created.json())
    assert response.type == "batch-response" and response.entry[0].response.status == "201 Created"
    referral = Referral.objects.get()
    assert (referral.patient_first_name, referral.patient_last_name) == ("ADAM", "EVERYMAN")
    assert referral.patient_dob == dt.date(1961, 6, 15) and referral.patient_mrn == "PATID1234"
    assert referral.payer == "Blue Cross Blue Shield of Texas" and referral.member_id == "HMO-12345"
    assert referral.icd10_codes == "K63.3" and referral.reason == "Referral to Specialist"
    assert referral.urgency == "routine" and referral.channel == "fhir"
    assert referral.external_id == "226839"  # the referral ServiceRequest, not the lab orders
    assert referral.referrer_to_match
    assert referral.referrer_as_received["last_name"] == "POWELL"
    assert referral.referrer_as_received["practice"] == "GOOD HEALTH HOSPITAL"

    # The second sample converts the same referral (same identifier): no second referral.
    second = json.loads(sample("fhir/REF-I12-02-as-fhir-bundle.json").read_text())
    again = post(c, "/fhir/Bundle", second)
    assert again.status_code == 200 and Referral.objects.count() == 1


def test_a_transaction_bundle_posted_to_the_base_with_a_task_uses_the_tasks_focus(
    token_client, referring_provider
):
    c = token_client("manager")
    sr = service_request(referring_provider.npi)
    patient, practitioner = sr.pop("contained")
    sr.update(id="sr1", subject={"reference": "Patient/pat"}, requester={"reference": "Practitioner/ref"})
    other = {
        "resourceType": "ServiceRequest",
        "id": "lab",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/pat"},
        "identifier": [{"system": "urn:lab", "value": "L1"}],
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:lab",
                "resource": other,
                "request": {"method": "POST", "url": "ServiceRequest"},
            },
            {
                "resource": {
                    "resourceType": "Task",
                    "status": "requested",
                    "intent": "order",
                    "focus": {"reference": "ServiceRequest/sr1"},
                },
                "request": {"method": "POST", "url": "Task"},
            },
            {"resource": sr, "request": {"method": "POST", "url": "ServiceRequest"}},
            {"resource": patient, "request": {"method": "POST", "url": "Patient"}},
            {"resource": practitioner, "request": {"method": "POST", "url": "Practitioner"}},
        ],
    }

    response = post(c, "/fhir/", bundle)

    assert response.status_code == 201, response.content
    assert response.json()["type"] == "transaction-response"
    assert Referral.objects.get().external_id == "SR-2026-0001"


def test_tasks_can_be_searched_by_the_service_request_identifier(token_client, referring_provider):
    c = token_client("coordinator")
    post(c, "/fhir/ServiceRequest", service_request(referring_provider.npi))

    found = c.get("/fhir/Task", {"identifier": "urn:ehr:referrals|SR-2026-0001"})
    assert found.status_code == 200
    bundle = Bundle.model_validate(found.json())
    assert bundle.type == "searchset" and bundle.total == 1
    assert c.get("/fhir/Task", {"identifier": "urn:other|SR-2026-0001"}).json()["total"] == 0


def _issues(response) -> list:
    assert response["Content-Type"].startswith("application/fhir+json")
    return OperationOutcome.model_validate(response.json()).issue


INVALID = [
    ("/fhir/ServiceRequest", "{not json", 400, "structure", "not valid JSON"),
    ("/fhir/ServiceRequest", "[1, 2]", 400, "structure", "JSON object"),
    ("/fhir/ServiceRequest", {"resourceType": "Patient"}, 400, "invalid", "Expected a ServiceRequest"),
    (
        "/fhir/Bundle",
        {"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {"resourceType": "Nope"}}]},
        400,
        "structure",
        "not a valid FHIR R4 resource",
    ),
    ("/fhir/Bundle", {"resourceType": "Bundle", "type": "searchset"}, 400, "invalid", "Bundle.type"),
    (
        "/fhir/Bundle",
        {"resourceType": "Bundle", "type": "collection", "entry": []},
        422,
        "required",
        "no ServiceRequest",
    ),
]


@pytest.mark.parametrize(("path", "body", "status", "code", "text"), INVALID)
def test_invalid_fhir_gets_an_operation_outcome_never_a_500(token_client, path, body, status, code, text):
    response = post(token_client("coordinator"), path, body)

    assert response.status_code == status
    issue = _issues(response)[0]
    assert issue.severity == "error" and issue.code == code and text in issue.diagnostics
    assert not Referral.objects.exists()


def test_a_model_validation_error_names_the_element_but_not_the_value(token_client, referring_provider):
    body = service_request(referring_provider.npi)
    body["contained"][0]["birthDate"] = "Quackenbush-secret"
    body["status"] = 42

    response = post(token_client("coordinator"), "/fhir/ServiceRequest", body)

    assert response.status_code == 400
    issues = _issues(response)
    assert {tuple(i.expression or []) for i in issues} >= {("contained.0.birthDate",)}
    assert "Quackenbush" not in response.content.decode()


@pytest.mark.parametrize(
    ("change", "expression"),
    [
        (lambda sr: sr["contained"][0].pop("birthDate"), "Patient.birthDate"),
        (lambda sr: sr["contained"][0].pop("name"), "Patient.name"),
        (lambda sr: sr["contained"][0].update(birthDate="1961"), "Patient.birthDate"),
        (lambda sr: sr.pop("identifier"), "ServiceRequest.identifier"),
        (lambda sr: sr.update(subject={"reference": "#nobody"}), "ServiceRequest.subject"),
    ],
)
def test_a_referral_without_what_it_needs_gets_422(token_client, referring_provider, change, expression):
    body = service_request(referring_provider.npi)
    change(body)

    response = post(token_client("coordinator"), "/fhir/ServiceRequest", body)

    assert response.status_code == 422
    assert _issues(response)[0].expression == [expression]
    assert not Referral.objects.exists()


def test_the_wrong_content_type_is_refused(token_client, referring_provider):
    body = json.dumps(service_request(referring_provider.npi))
    response = post(token_client("coordinator"), "/fhir/ServiceRequest", body, content_type="text/plain")
    assert response.status_code == 415 and _issues(response)[0].code == "not-supported"


def test_without_a_token_the_answer_is_401(db, referring_provider):
    response = post(Client(), "/fhir/ServiceRequest", service_request(referring_provider.npi))
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")
    assert _issues(response)[0].code == "login"
    assert (
        Client(headers={"Authorization": "Bearer lia_wrong"}).get("/fhir/Task/liaison-1").status_code == 401
    )


@pytest.mark.parametrize("role", ["liaison", "analyst"])
def test_roles_that_may_not_see_patient_data_get_403_and_it_is_audited(
    token_client, role, referring_provider
):
    owner = token_client("coordinator", email="owner@example.org")
    post(owner, "/fhir/ServiceRequest", service_request(referring_provider.npi))
    referral = Referral.objects.get()
    c = token_client(role)

    for response in (
        post(c, "/fhir/ServiceRequest", service_request(referring_provider.npi, identifier="other")),
        c.get(f"/fhir/Task/liaison-{referral.pk}"),
        c.get("/fhir/Task", {"identifier": "SR-2026-0001"}),
    ):
        assert response.status_code == 403
        assert _issues(response)[0].code == "forbidden"
        assert "Quackenbush" not in response.content.decode()
    assert Referral.objects.count() == 1
    assert AuditEvent.objects.filter(action="denied", actor=c.user).count() == 3


def test_a_physician_reads_only_the_tasks_of_their_own_patients(
    token_client, referring_provider, our_physician
):
    owner = token_client("coordinator")
    post(owner, "/fhir/ServiceRequest", service_request(referring_provider.npi, our_physician.npi))
    post(owner, "/fhir/ServiceRequest", service_request(referring_provider.npi, identifier="not-theirs"))
    mine, theirs = Referral.objects.order_by("pk")
    physician = token_client("physician", provider=our_physician)

    assert physician.get(f"/fhir/Task/liaison-{mine.pk}").status_code == 200
    assert physician.get(f"/fhir/Task/liaison-{theirs.pk}").status_code == 404
    assert physician.get("/fhir/Task/not-a-task").status_code == 404


def test_the_capability_statement_describes_the_endpoints(db):
    response = Client().get("/fhir/metadata")

    assert response.status_code == 200
    statement = CapabilityStatement.model_validate(response.json())
    types = {r.type for r in statement.rest[0].resource}
    assert types == {"ServiceRequest", "Bundle", "Task"}
    assert Client().post("/fhir/metadata").status_code == 405
