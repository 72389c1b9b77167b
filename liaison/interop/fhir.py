"""FHIR R4: referrals as BSeR-style Tasks, and referrals from a ServiceRequest or a Bundle.

Resources are built and validated with fhir.resources (R4B models, wire-compatible with R4 for
the resources used here). Error texts name the element, never a value (they go back to the
sender in an OperationOutcome).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import TYPE_CHECKING, Any

from fhir.resources.R4B.task import Task

from liaison.referrals.models import Referral, Status

if TYPE_CHECKING:
    from liaison.interop.incoming import IncomingReferral

BUSINESS_STATUS_SYSTEM = "https://liaison.example/fhir/CodeSystem/referral-status"
# Task.status (workflow) for each of our statuses; businessStatus carries the precise step.
TASK_STATUS = {
    Status.RECEIVED: "received",
    Status.ACCEPTED: "accepted",
    Status.DECLINED: "rejected",
    Status.SCHEDULED: "in-progress",
    Status.SEEN: "in-progress",
    Status.NO_SHOW: "on-hold",
    Status.CANCELLED: "cancelled",
    Status.NOTE_SENT: "completed",
    Status.CLOSED: "completed",
}


def task_id(referral: Referral) -> str:
    return f"liaison-{referral.pk}"


def task_resource(referral: Referral) -> dict[str, Any]:
    """The Task a referring system reads to follow its referral (no patient demographics in it)."""
    task: dict[str, Any] = {
        "resourceType": "Task",
        "id": task_id(referral),
        "status": TASK_STATUS[referral.status],
        "businessStatus": {
            "coding": [
                {
                    "system": BUSINESS_STATUS_SYSTEM,
                    "code": referral.status,
                    "display": Status(referral.status).label,
                }
            ],
            "text": Status(referral.status).label,
        },
        "intent": "order",
        "authoredOn": referral.received_at.isoformat(),
        "lastModified": referral.updated_at.isoformat(),
        "focus": {"reference": f"ServiceRequest/{task_id(referral)}"},
    }
    if referral.external_id:
        task["identifier"] = [
            {"system": referral.source_system or "urn:liaison:external", "value": referral.external_id}
        ]
    if referral.appointment_at and referral.status in (Status.SCHEDULED, Status.NO_SHOW):
        task["restriction"] = {"period": {"start": referral.appointment_at.isoformat()}}
    if referral.referred_to_physician is not None and referral.referred_to_physician.npi:
        task["owner"] = {
            "identifier": {
                "system": "http://hl7.org/fhir/sid/us-npi",
                "value": referral.referred_to_physician.npi,
            },
            "display": referral.referred_to_physician.display_name,
        }
    return Task.model_validate(task).model_dump(mode="json", exclude_none=True)


# --- intake: a ServiceRequest (or a BSeR-style Bundle) -> IncomingReferral ----------------------

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
ICD10_URLS = {
    "http://hl7.org/fhir/sid/icd-10",
    "http://hl7.org/fhir/sid/icd-10-cm",
    "http://hl7.org/fhir/sid/icd-10-us",
    "urn:oid:2.16.840.1.113883.6.90",
    "urn:oid:2.16.840.1.113883.6.3",
}
NOT_MRN_TYPES = {"SS", "SB", "DL", "PPN", "MC", "MA", "MB", "MI", "TAX", "NI", "AN"}
PRIORITY = {"routine": "routine", "urgent": "urgent", "asap": "urgent", "stat": "stat"}
REFERRAL_CATEGORIES = {"3457005", "patient-referral-request", "referral"}


class FhirError(Exception):
    """A resource we cannot turn into a referral: `status` 400 (structure) or 422 (content)."""

    def __init__(
        self, message: str, *, status: int = 422, code: str = "required", expression: str = ""
    ) -> None:
        super().__init__(message)
        self.message, self.status, self.code, self.expression = message, status, code, expression


def validate_resource(data: Any, expected: str) -> None:
    """Check the JSON with the fhir.resources R4B model; raises FhirError (400) with the issues."""
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError as PydanticError

    if not isinstance(data, dict):
        raise FhirError("The body must be a JSON object (a FHIR resource).", status=400, code="structure")
    kind = data.get("resourceType")
    if kind != expected:
        shown = kind if isinstance(kind, str) and kind.isalnum() and len(kind) < 40 else "something else"
        raise FhirError(
            f"Expected a {expected} resource, got {shown}.",
            status=400,
            code="invalid",
            expression="resourceType",
        )
    try:
        get_fhir_model_class(expected).model_validate(data)
    except PydanticError as exc:
        raise InvalidResource(
            exc.errors(include_input=False, include_url=False, include_context=False)
        ) from None
    except Exception as exc:  # fhir.resources raises KeyError/TypeError for unknown or odd resource types
        raise FhirError(
            f"The {expected} contains something that is not a valid FHIR R4 resource ({type(exc).__name__}).",
            status=400,
            code="structure",
        ) from None


class InvalidResource(FhirError):
    """Validation errors from the FHIR model: one issue each (location and message, no values)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("The resource is not valid FHIR R4.", status=400, code="structure")
        self.errors = errors


class Resources:
    """The resources of a Bundle (and those contained in a resource), found by reference."""

    def __init__(self) -> None:
        self.by_ref: dict[str, dict[str, Any]] = {}
        self.all: list[dict[str, Any]] = []

    def add(self, resource: dict[str, Any], full_url: str = "") -> None:
        if not isinstance(resource, dict) or "resourceType" not in resource:
            return
        self.all.append(resource)
        if resource.get("id"):
            self.by_ref[f"{resource['resourceType']}/{resource['id']}"] = resource
        if full_url:
            self.by_ref[full_url] = resource
        for contained in resource.get("contained") or []:
            if isinstance(contained, dict) and contained.get("id"):
                self.by_ref[f"#{contained['id']}"] = contained
                self.all.append(contained)

    def get(self, reference: Any, *types: str) -> dict[str, Any] | None:
        ref = reference.get("reference", "") if isinstance(reference, dict) else ""
        found = self.by_ref.get(ref)
        if found is None and "/" in ref:
            found = self.by_ref.get("/".join(ref.rstrip("/").split("/")[-2:]))  # absolute URL
        if found is not None and (not types or found.get("resourceType") in types):
            return found
        return None

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.all if r.get("resourceType") == kind]


def _codes(concept: Any) -> list[dict[str, Any]]:
    return [c for c in (concept or {}).get("coding") or [] if isinstance(c, dict)]


def _text(concept: Any) -> str:
    concept = concept or {}
    return concept.get("text") or next(
        (c.get("display", "") for c in _codes(concept) if c.get("display")), ""
    )


def _name(resource: dict[str, Any]) -> tuple[str, str]:
    names = [n for n in resource.get("name") or [] if isinstance(n, dict)]
    names.sort(key=lambda n: {"official": 0, "usual": 1}.get(n.get("use", ""), 2))
    for n in names:
        given = [g for g in n.get("given") or [] if g]
        if n.get("family") or given:
            return (n.get("family") or "").strip(), (given[0] if given else "").strip()
    return "", ""


def _telecom(resource: dict[str, Any] | None, system: str) -> str:
    for t in (resource or {}).get("telecom") or []:
        if isinstance(t, dict) and t.get("system") == system and t.get("value"):
            return str(t["value"])
    return ""


def _npi(resource: dict[str, Any] | None) -> str:
    for ident in (resource or {}).get("identifier") or []:
        if isinstance(ident, dict) and ident.get("system") == NPI_SYSTEM and ident.get("value"):
            return str(ident["value"]).strip()
    return ""


def _address(resource: dict[str, Any] | None) -> str:
    for a in (resource or {}).get("address") or []:
        if not isinstance(a, dict):
            continue
        place = " ".join(p for p in (a.get("state", ""), a.get("postalCode", "")) if p)
        parts = [", ".join(a.get("line") or []), a.get("city", ""), place]
        return ", ".join(p for p in parts if p)[:200]
    return ""


def _mrn(patient: dict[str, Any]) -> str:
    identifiers = [i for i in patient.get("identifier") or [] if isinstance(i, dict) and i.get("value")]
    for ident in identifiers:
        if any(c.get("code") == "MR" for c in _codes(ident.get("type"))):
            return str(ident["value"])[:100]
    for ident in identifiers:
        types = {c.get("code") for c in _codes(ident.get("type"))}
        if not types & NOT_MRN_TYPES and "us-ssn" not in (ident.get("system") or ""):
            return str(ident["value"])[:100]
    return ""


def pick_service_request(resources: Resources) -> dict[str, Any]:
    """The referral in a Bundle: a Task's focus, else the ServiceRequest categorised as a
    referral, else the first ServiceRequest with an identifier, else the first one."""
    requests = resources.of_type("ServiceRequest")
    for task in resources.of_type("Task"):
        focus = resources.get(task.get("focus"), "ServiceRequest")
        if focus is not None:
            return focus
    for sr in requests:
        if any(c.get("code") in REFERRAL_CATEGORIES for cat in sr.get("category") or [] for c in _codes(cat)):
            return sr
    for sr in requests:
        if sr.get("identifier"):
            return sr
    if requests:
        return requests[0]
    raise FhirError(
        "The Bundle holds no ServiceRequest (the referral).", code="required", expression="Bundle.entry"
    )


def resources_of_bundle(bundle: dict[str, Any]) -> Resources:
    resources = Resources()
    for entry in bundle.get("entry") or []:
        if isinstance(entry, dict):
            resources.add(entry.get("resource") or {}, entry.get("fullUrl", ""))
    return resources


def referral_from_service_request(sr: dict[str, Any], resources: Resources) -> IncomingReferral:
    """Map a ServiceRequest and the resources it references (see docs/interop.md)."""
    from liaison.interop.incoming import IncomingReferral, ReferredTo, clean_icd10, clean_phone, zip5
    from liaison.referrals.services import ReferrerInfo

    resources.add(sr)  # its contained resources
    identifiers = [
        i for i in sr.get("identifier") or [] if isinstance(i, dict) and str(i.get("value") or "").strip()
    ]
    if not identifiers:
        raise FhirError(
            "ServiceRequest.identifier is required: it makes a repeated post update the same referral.",
            expression="ServiceRequest.identifier",
        )
    system = str(identifiers[0].get("system") or "urn:liaison:fhir")
    source = (
        system if len(system) <= 100 else f"{system[:59]}#{hashlib.sha256(system.encode()).hexdigest()[:40]}"
    )
    incoming = IncomingReferral(
        channel="fhir",
        source_system=source,
        external_ids=[
            str(i["value"]).strip()[:100]
            for i in identifiers
            if str(i.get("system") or "urn:liaison:fhir") == system
        ],
    )
    patient = resources.get(sr.get("subject"), "Patient")
    if patient is None:
        raise FhirError(
            "ServiceRequest.subject must reference the Patient (contained, or in the Bundle).",
            expression="ServiceRequest.subject",
        )
    incoming.patient_last_name, incoming.patient_first_name = (v[:100] for v in _name(patient))
    if not incoming.patient_last_name or not incoming.patient_first_name:
        raise FhirError("Patient.name needs a family and a given name.", expression="Patient.name")
    birth = str(patient.get("birthDate") or "")
    if not birth:
        raise FhirError("Patient.birthDate is required.", expression="Patient.birthDate")
    try:
        incoming.patient_dob = dt.date.fromisoformat(birth)
    except ValueError:
        raise FhirError(
            "Patient.birthDate must be a full date (YYYY-MM-DD).",
            code="value",
            expression="Patient.birthDate",
        ) from None
    incoming.patient_mrn = _mrn(patient)
    incoming.patient_phone = clean_phone(
        _telecom(patient, "phone"), "Patient.telecom phone", incoming.warnings
    )
    addresses = [a for a in patient.get("address") or [] if isinstance(a, dict)]
    incoming.patient_zip = zip5(addresses[0].get("postalCode", "")) if addresses else ""

    # Referrer: requester -> PractitionerRole (practitioner, organization) | Practitioner | Organization.
    requester = resources.get(sr.get("requester"), "PractitionerRole", "Practitioner", "Organization")
    role = requester if requester and requester["resourceType"] == "PractitionerRole" else None
    practitioner = (
        resources.get(role.get("practitioner"), "Practitioner")
        if role
        else (requester if requester and requester["resourceType"] == "Practitioner" else None)
    )
    organization = (
        resources.get(role.get("organization"), "Organization")
        if role
        else (requester if requester and requester["resourceType"] == "Organization" else None)
    )
    if requester is None:
        tasks = resources.of_type("Task")
        if tasks:
            practitioner = resources.get(tasks[0].get("requester"), "Practitioner")
    last, first = _name(practitioner) if practitioner else ("", "")
    incoming.referrer = ReferrerInfo(
        npi=_npi(practitioner) or _npi(role),
        last_name=last[:80],
        first_name=first[:80],
        phone=(_telecom(role, "phone") or _telecom(practitioner, "phone") or _telecom(organization, "phone"))[
            :30
        ],
        fax=(_telecom(role, "fax") or _telecom(practitioner, "fax") or _telecom(organization, "fax"))[:30],
        practice=str((organization or {}).get("name") or "")[:200],
        address=_address(practitioner) or _address(organization),
    )

    # Referred to: the first performer that is a practitioner (or a role), and its location.
    for performer in sr.get("performer") or []:
        found = resources.get(performer, "PractitionerRole", "Practitioner")
        if found is None:
            continue
        if found["resourceType"] == "PractitionerRole":
            person = resources.get(found.get("practitioner"), "Practitioner") or {}
            locations = [resources.get(loc, "Location") for loc in found.get("location") or []]
            place = next((loc.get("name", "") for loc in locations if loc), "")
        else:
            person, place = found, ""
        last, first = _name(person)
        incoming.referred_to = ReferredTo(
            npi=_npi(person) or _npi(found), last_name=last, first_name=first, place=place
        )
        break
    if not incoming.referred_to.place:
        for ref in sr.get("locationReference") or []:
            loc = resources.get(ref, "Location")
            if loc and loc.get("name"):
                incoming.referred_to.place = loc["name"]
                break

    priority = sr.get("priority") or ""
    incoming.urgency = PRIORITY.get(priority, "routine") if priority else ""
    reason_texts = [
        c.get("text") for c in sr.get("reasonCode") or [] if isinstance(c, dict) and c.get("text")
    ]
    notes = [n.get("text") for n in sr.get("note") or [] if isinstance(n, dict) and n.get("text")]
    incoming.reason = ("; ".join(reason_texts) or (notes[0] if notes else "") or _text(sr.get("code")))[:2000]

    codes = [
        c.get("code", "")
        for concept in sr.get("reasonCode") or []
        for c in _codes(concept)
        if c.get("system") in ICD10_URLS
    ]
    conditions = [resources.get(ref, "Condition") for ref in sr.get("reasonReference") or []]
    conditions = [c for c in conditions if c]
    if not conditions:
        patient_refs = {f"Patient/{patient.get('id')}"} | {
            k for k, v in resources.by_ref.items() if v is patient
        }
        conditions = [
            c
            for c in resources.of_type("Condition")
            if (c.get("subject") or {}).get("reference") in patient_refs
        ]
    codes += [
        c.get("code", "")
        for cond in conditions
        for c in _codes(cond.get("code"))
        if c.get("system") in ICD10_URLS
    ]
    incoming.icd10_codes = clean_icd10(codes, incoming.warnings)

    coverage = next(
        (
            resources.get(ref, "Coverage")
            for ref in sr.get("insurance") or []
            if resources.get(ref, "Coverage")
        ),
        None,
    )
    if coverage is None:
        coverages = resources.of_type("Coverage")
        coverage = coverages[0] if coverages else None
    if coverage is not None:
        payor = next(
            (
                resources.get(p, "Organization")
                for p in coverage.get("payor") or []
                if resources.get(p, "Organization")
            ),
            None,
        )
        plan = next(
            (
                c.get("name") or c.get("value")
                for c in coverage.get("class") or []
                if any(t.get("code") == "plan" for t in _codes(c.get("type")))
            ),
            "",
        )
        incoming.payer = str((payor or {}).get("name") or plan or "")[:100]
        member = coverage.get("subscriberId") or next(
            (
                i.get("value")
                for i in coverage.get("identifier") or []
                if any(c.get("code") == "MB" for c in _codes(i.get("type")))
            ),
            "",
        )
        incoming.member_id = str(member or "")[:100]
    return incoming


def operation_outcome(issues: list[dict[str, Any]]) -> dict[str, Any]:
    """An OperationOutcome (validated by the model): each issue a dict of severity, code, diagnostics."""
    from fhir.resources.R4B.operationoutcome import OperationOutcome

    return OperationOutcome.model_validate({"resourceType": "OperationOutcome", "issue": issues}).model_dump(
        mode="json", exclude_none=True
    )


def capability_statement(base_url: str) -> dict[str, Any]:
    from fhir.resources.R4B.capabilitystatement import CapabilityStatement

    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-01-01",
        "publisher": "Liaison",
        "kind": "instance",
        "software": {"name": "Liaison"},
        "implementation": {"description": "Liaison referral intake", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "Referral intake (BSeR-style). Authenticate with a personal API token: "
                    "'Authorization: Bearer lia_...'; only roles that may see patient data are allowed."
                ),
                "security": {
                    "service": [{"text": "Bearer token (Liaison API token)"}],
                    "description": "Authorization: Bearer lia_...",
                },
                "resource": [
                    {
                        "type": "ServiceRequest",
                        "interaction": [{"code": "create"}],
                        "documentation": "POST a referral, with the Patient and Practitioner(Role) contained "
                        "or referenced; idempotent on ServiceRequest.identifier.",
                    },
                    {
                        "type": "Bundle",
                        "interaction": [{"code": "create"}],
                        "documentation": "POST a transaction, batch or collection Bundle with the Task, "
                        "ServiceRequest, Patient, Practitioner(Role), Coverage and Condition.",
                    },
                    {
                        "type": "Task",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [{"name": "identifier", "type": "token"}],
                        "documentation": "The referral's status (Task.status) and step (Task.businessStatus).",
                    },
                ],
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
            }
        ],
    }
    return CapabilityStatement.model_validate(statement).model_dump(mode="json", exclude_none=True)
