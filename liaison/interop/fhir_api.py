"""FHIR R4 endpoints (/fhir/): referrals in, their Task out.

    POST /fhir/ServiceRequest   a ServiceRequest with its Patient and Practitioner(Role) contained
                                or referenced -> 201 + the Task (200 when it was already received)
    POST /fhir/Bundle           a BSeR-style Bundle (also POST /fhir/ with a transaction Bundle)
    GET  /fhir/Task/{id}        the referral's Task: status and businessStatus
    GET  /fhir/Task?identifier=[system|]value   search by the ServiceRequest's identifier
    GET  /fhir/metadata         the CapabilityStatement

Authentication: a personal API token (`Authorization: Bearer lia_...`), of a role that may see
patient data. Every error is an OperationOutcome (application/fhir+json), never a page.
Plain Django views rather than the ninja API: FHIR has its own media type and error resource.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.core.exceptions import RequestDataTooBig, ValidationError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from liaison.api import TokenAuth
from liaison.interop import fhir
from liaison.interop.services import receive_fhir_referral, safe_error_summary
from liaison.referrals.models import Referral
from liaison.referrals.services import record_denied, record_phi_view

logger = logging.getLogger(__name__)
FHIR_JSON = "application/fhir+json; charset=utf-8"
ACCEPTED_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")


def respond(body: dict[str, Any], status: int = 200, **headers: str) -> HttpResponse:
    response = HttpResponse(json.dumps(body), status=status, content_type=FHIR_JSON)
    response["Cache-Control"] = "no-store"
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def outcome(status: int, code: str, diagnostics: str, expression: str = "", **headers: str) -> HttpResponse:
    issue: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = [expression]
    return respond(fhir.operation_outcome([issue]), status, **headers)


def _user(request: HttpRequest) -> tuple[Any, HttpResponse | None]:
    user = TokenAuth()(request)
    if user is None:
        return None, outcome(
            401,
            "login",
            "Authentication required: send a Liaison API token (Authorization: Bearer lia_...).",
            WWW_Authenticate='Bearer realm="liaison-fhir"',
        )
    if not user.can_see_phi:
        record_denied(user, "", request.path)
        return user, outcome(
            403, "forbidden", "Referrals hold patient data, which your role does not give access to."
        )
    return user, None


def _issues_of(exc: fhir.InvalidResource) -> list[dict[str, Any]]:
    issues = []
    for error in exc.errors[:20]:
        path = ".".join(str(p) for p in error.get("loc", ()))
        issues.append(
            {
                "severity": "error",
                "code": "structure",
                # pydantic's message without the input it was given (which may be patient data).
                "diagnostics": f"{path}: {error.get('msg', 'invalid')}"[:300],
                **({"expression": [path]} if path else {}),
            }
        )
    return issues or [{"severity": "error", "code": "structure", "diagnostics": exc.message}]


def _create(request: HttpRequest, kind: str) -> HttpResponse:
    user, refused = _user(request)
    if refused is not None:
        return refused
    content_type = request.content_type or ""
    if content_type not in ACCEPTED_TYPES:
        return outcome(415, "not-supported", "Send JSON: Content-Type application/fhir+json.")
    try:
        data = json.loads(request.body or b"null")
    except RequestDataTooBig:
        return outcome(413, "too-costly", "The request is too large.")
    except (ValueError, UnicodeDecodeError):
        return outcome(400, "structure", "The body is not valid JSON.")
    if kind == "Bundle" and isinstance(data, dict) and data.get("resourceType") == "ServiceRequest":
        kind = "ServiceRequest"  # POST /fhir/ with a ServiceRequest: accept it as such
    try:
        referral, what = receive_fhir_referral(data, kind=kind, actor=user)
    except fhir.InvalidResource as exc:
        return respond(fhir.operation_outcome(_issues_of(exc)), 400)
    except fhir.FhirError as exc:
        return outcome(exc.status, exc.code, exc.message, exc.expression)
    except ValidationError as exc:
        from liaison.interop.services import validation_text

        return outcome(422, "business-rule", validation_text(exc))
    except Exception as exc:
        logger.error("FHIR %s post failed: %s", kind, safe_error_summary(exc))
        return outcome(500, "exception", "Internal error; the administrator can see it in the log.")
    task = fhir.task_resource(Referral.objects.select_related("referred_to_physician").get(pk=referral.pk))
    location = f"{request.build_absolute_uri('/fhir/Task/')}{task['id']}"
    status = 201 if what == "created" else 200
    if kind == "Bundle":
        response_type = {"transaction": "transaction-response", "batch": "batch-response"}.get(
            data.get("type"), "batch-response"
        )
        body = {
            "resourceType": "Bundle",
            "type": response_type,
            "entry": [
                {
                    "resource": task,
                    "response": {
                        "status": "201 Created" if status == 201 else "200 OK",
                        "location": f"Task/{task['id']}",
                    },
                }
            ],
        }
        return respond(body, status, Location=location)
    return respond(task, status, Location=location)


@csrf_exempt
def service_request(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return outcome(405, "not-supported", "POST a ServiceRequest here.", Allow="POST")
    return _create(request, "ServiceRequest")


@csrf_exempt
def bundle(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return outcome(405, "not-supported", "POST a Bundle here.", Allow="POST")
    return _create(request, "Bundle")


def _visible_referrals(user: Any) -> Any:
    return Referral.objects.for_user(user).select_related("referred_to_physician")


@csrf_exempt
def task(request: HttpRequest, task_id: str) -> HttpResponse:
    if request.method != "GET":
        return outcome(405, "not-supported", "Tasks are read-only here.", Allow="GET")
    user, refused = _user(request)
    if refused is not None:
        return refused
    pk = task_id.removeprefix("liaison-")
    referral = _visible_referrals(user).filter(pk=int(pk)).first() if pk.isdigit() and len(pk) < 19 else None
    if referral is None:
        record_denied(user, pk[:20], request.path)
        return outcome(404, "not-found", "No such Task.")
    record_phi_view(user, referral, "fhir_read")
    return respond(fhir.task_resource(referral))


@csrf_exempt
def tasks(request: HttpRequest) -> HttpResponse:
    """Search by the ServiceRequest's identifier: ?identifier=[system|]value."""
    if request.method != "GET":
        return outcome(405, "not-supported", "Search Tasks with GET.", Allow="GET")
    user, refused = _user(request)
    if refused is not None:
        return refused
    token = request.GET.get("identifier", "")
    if not token:
        return outcome(400, "required", "Search Tasks by identifier: ?identifier=system|value.")
    system, _, value = token.rpartition("|")
    found = _visible_referrals(user).filter(external_id=value[:100]).exclude(external_id="")
    if system:
        found = found.filter(source_system=system[:100])
    found = list(found.order_by("pk")[:50])
    for referral in found:
        record_phi_view(user, referral, "fhir_read")
    body = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(found),
        "entry": [
            {
                "fullUrl": request.build_absolute_uri(f"/fhir/Task/liaison-{r.pk}"),
                "resource": fhir.task_resource(r),
            }
            for r in found
        ],
    }
    return respond(body)


@csrf_exempt
def metadata(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return outcome(405, "not-supported", "GET the CapabilityStatement.", Allow="GET")
    return respond(fhir.capability_statement(request.build_absolute_uri("/fhir/")))
