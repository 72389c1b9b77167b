"""FHIR R4 views of referrals (BSeR-style Task), built and validated with fhir.resources (R4B models)."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.task import Task

from liaison.referrals.models import Referral, Status

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
