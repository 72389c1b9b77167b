"""Every write of the intake channels. Referrals themselves are only ever written through
`liaison.referrals.services` (receive_referral, update_referral, change_status), so HL7, FHIR and
file imports follow the same rules as the intake form.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import traceback
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify

from liaison.audit.services import record
from liaison.core.phi import decrypt_bytes, encrypt_bytes
from liaison.core.services import save_with_audit
from liaison.directory.models import Location, Provider
from liaison.interop import hl7
from liaison.interop.hl7 import Hl7Error
from liaison.interop.incoming import IncomingReferral, ReferredTo
from liaison.interop.models import AppointmentLink, ColumnMapping, Hl7Message, Hl7Outcome, ReferralImport
from liaison.referrals import services as referrals
from liaison.referrals.models import Referral, Status
from liaison.referrals.services import TransitionError

logger = logging.getLogger(__name__)

# Statuses a scheduling message may still act on (later ones mean the visit already happened).
SCHEDULABLE = (Status.RECEIVED, Status.ACCEPTED, Status.SCHEDULED, Status.NO_SHOW)


def safe_error_summary(exc: BaseException) -> str:
    """Type and where it was raised, without the exception's text (which may quote patient data)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}{where}"


def validation_text(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(
            f"{name.replace('_', ' ')}: {' '.join(messages)}" for name, messages in exc.message_dict.items()
        )
    return " ".join(exc.messages)


# --- referrals from any channel ----------------------------------------------------------------


def match_referred_to(referred_to: ReferredTo) -> tuple[Location | None, Provider | None]:
    """One of our sites and physicians the sender designated, when it is unambiguous."""
    physician = None
    if referred_to.npi:
        physician = Provider.objects.filter(is_ours=True, npi=referred_to.npi.strip()).exclude(npi="").first()
    if physician is None and referred_to.last_name:
        same_name = Provider.objects.filter(is_ours=True, last_name__iexact=referred_to.last_name.strip())
        if referred_to.first_name:
            same_name = same_name.filter(first_name__istartswith=referred_to.first_name.strip()[:1])
        found = list(same_name[:2])
        physician = found[0] if len(found) == 1 else None
    site = None
    if referred_to.place:
        place = referred_to.place.strip()
        found_sites = list(
            Location.objects.sites()
            .select_related("practice")
            .filter(Q(name__iexact=place) | Q(city__iexact=place))[:2]
        )
        site = found_sites[0] if len(found_sites) == 1 else None
    if site is None and physician is not None:
        sites = list(physician.locations.filter(practice__is_ours=True).select_related("practice")[:2])
        site = sites[0] if len(sites) == 1 else None
    return site, physician


def find_by_external_id(
    source_system: str, external_ids: list[str], *, lock: bool = False
) -> Referral | None:
    if not external_ids:
        return None
    # exclude(external_id=""): the partial unique index's condition, so that the index is used.
    qs = Referral.objects.filter(source_system=source_system, external_id__in=external_ids).exclude(
        external_id=""
    )
    if lock:
        qs = qs.select_for_update()
    return qs.order_by("pk").first()


@transaction.atomic
def receive_incoming(incoming: IncomingReferral, *, actor: Any) -> tuple[Referral, str]:
    """Create the referral, or update the one already received with the same identifier.

    Returns the referral and what happened: "created", "updated" or "unchanged" (the same
    message twice changes nothing).
    """
    missing = incoming.missing()
    if missing:
        raise ValidationError({"patient": [f"Missing: {', '.join(missing)}."]})
    site, physician = match_referred_to(incoming.referred_to)
    existing = find_by_external_id(incoming.source_system, incoming.external_ids, lock=True)
    if existing is None:
        try:
            with transaction.atomic():
                referral = referrals.receive_referral(
                    actor=actor,
                    referrer=incoming.referrer,
                    received_at=incoming.received_at,
                    channel=incoming.channel,
                    source_system=incoming.source_system,
                    external_id=incoming.external_ids[0] if incoming.external_ids else "",
                    site=site,
                    referred_to_physician=physician,
                    **incoming.referral_fields(),
                )
            return referral, "created"
        except IntegrityError:
            # The same referral arrived at the same moment by another connection: update it.
            existing = find_by_external_id(incoming.source_system, incoming.external_ids, lock=True)
            if existing is None:
                raise
    changes = incoming.corrections()
    if site is not None:
        changes["site"] = site
    if physician is not None:
        changes["referred_to_physician"] = physician
    before = existing.updated_at
    referrals.update_referral(existing, actor=actor, **changes)
    return existing, "updated" if existing.updated_at != before else "unchanged"


# --- HL7 v2 ------------------------------------------------------------------------------------


@dataclass
class Hl7Result:
    ack: str
    outcome: str
    text: str
    log: Hl7Message

    @property
    def accepted(self) -> bool:
        return self.outcome == Hl7Outcome.ACCEPTED


def message_digest(text: str) -> str:
    """Keyed hash of the normalised message: equal for a re-sent copy, reveals nothing."""
    key = settings.PHI_INDEX_KEY.encode()
    return hmac.new(key, hl7.normalise(text).encode(), hashlib.sha256).hexdigest()


def receive_hl7(text: str, *, channel: str, peer: str = "") -> Hl7Result:
    """Process one HL7 v2 message and return the ACK to send back. Never raises for bad input:
    a malformed message gets AR, one we cannot apply AE, each with the reason; all are logged."""
    started = time.monotonic()
    header = hl7.peek_header(text)
    log = Hl7Message(
        channel=channel,
        peer=peer[:100],
        sending_application=header.sending_application,
        sending_facility=header.sending_facility,
        control_id=header.control_id,
        message_type=(f"{header.message_type}^{header.trigger}" if header.trigger else header.message_type)[
            :20
        ],
        digest=message_digest(text),
        raw=hl7.normalise(text),
        outcome=Hl7Outcome.ACCEPTED,
    )
    outcome, reason, code = Hl7Outcome.ACCEPTED, "", ""
    try:
        message = hl7.parse(text)
        hl7.check_supported(message)
        previous = (
            Hl7Message.objects.filter(
                sending_application=header.sending_application,
                sending_facility=header.sending_facility,
                control_id=header.control_id,
                digest=log.digest,
                outcome=Hl7Outcome.ACCEPTED,
            )
            .order_by("pk")
            .first()
        )
        if previous is not None:
            log.duplicate_of, log.referral_id = previous, previous.referral_id
            log.result = "duplicate of a message already processed: nothing changed"
            reason = "Duplicate: already processed, nothing changed."
            log.save()
        else:
            with transaction.atomic():
                referral, what = _apply(message)
                log.referral, log.result = referral, what
                reason = f"Referral {referral.pk}: {what}."
                log.save()
    except Hl7Error as exc:
        outcome, reason, code = exc.ack, exc.message, exc.code
    except ValidationError as exc:
        outcome, reason, code = Hl7Outcome.ERROR, validation_text(exc), "207"
    except Exception as exc:
        logger.error("HL7 message %s failed: %s", header.control_id[:40], safe_error_summary(exc))
        outcome, code = Hl7Outcome.ERROR, "207"
        reason = f"Internal error ({type(exc).__name__}); the administrator can see it in the log."
    if outcome != Hl7Outcome.ACCEPTED:
        # Whatever was written for this message was rolled back: log it afresh, with the reason.
        log.pk, log.referral, log.duplicate_of, log.result = None, None, None, ""
        log.outcome, log.error, log.error_code = outcome, reason[:500], code
        log.save()
    ack = hl7.build_ack(header, outcome, reason, code)
    logger.info(
        "HL7 %s %s from %s: %s in %.0f ms",
        log.message_type or "?",
        header.control_id[:40],
        header.sending_facility[:40] or "?",
        outcome,
        (time.monotonic() - started) * 1000,
    )
    return Hl7Result(ack=ack, outcome=outcome, text=reason, log=log)


def _actor(message: hl7.Message) -> str:
    return f"hl7:{message.source_system}"


def _apply(message: hl7.Message) -> tuple[Referral, str]:
    if message.code == "REF" and message.trigger in ("I12", "I13"):
        incoming = hl7.referral_from_ref(message)
        referral, what = receive_incoming(incoming, actor=_actor(message))
        if incoming.warnings:
            what = f"{what} ({'; '.join(sorted(set(incoming.warnings)))})"
        return referral, what[:200]
    if message.code == "REF" and message.trigger == "I14":
        return _cancel(message)
    return _schedule(message)


def _cancel(message: hl7.Message) -> tuple[Referral, str]:
    incoming = hl7.referral_from_ref(message)
    referral = find_by_external_id(incoming.source_system, incoming.external_ids, lock=True)
    if referral is None:
        raise Hl7Error("Unknown referral: RF1-6 / RF1-11 match no referral from this sender.", code="204")
    if referral.status == Status.CANCELLED:
        return referral, "unchanged (already cancelled)"
    _change(referral, Status.CANCELLED, message, note="Cancelled by the referring system (REF^I14).")
    return referral, "cancelled"


def _change(referral: Referral, to_status: str, message: hl7.Message, **kwargs: Any) -> None:
    try:
        referrals.change_status(referral, to_status, actor=_actor(message), **kwargs)
    except TransitionError as exc:
        raise Hl7Error(" ".join(exc.messages), code="207") from None
    except ValidationError as exc:  # e.g. a no-show reported before the appointment's time
        raise Hl7Error(" ".join(exc.messages), code="207") from None
    referral.refresh_from_db()


def find_appointment_referral(update: hl7.ScheduleUpdate) -> Referral:
    """The referral a scheduling message is about (rules in docs/interop.md):
    1. a referral id it carries: SCH-26/SCH-27 (placer/filler order number) equal to the
       referral's RF1-6/RF1-11 from the same sender, or our own Task id "liaison-<n>" in SCH-1,
       SCH-2, SCH-26 or SCH-27;
    2. the appointment (SCH-1/SCH-2) an earlier scheduling message already linked;
    3. the patient's MRN (PID-3), when exactly one open referral from that sender (or, failing
       that, from anyone) has it.
    """
    for value in [update.placer_id, update.filler_id, *update.order_ids]:
        if value.lower().startswith("liaison-") and value[8:].isdigit():
            found = Referral.objects.filter(pk=int(value[8:])).first()
            if found is not None:
                return found
    if update.order_ids:
        found = find_by_external_id(update.source_system, update.order_ids)
        if found is not None:
            return found
    links = AppointmentLink.objects.filter(source_system=update.source_system)
    link = None
    if update.filler_id:
        link = links.filter(filler_id=update.filler_id).order_by("-pk").first()
    if link is None and update.placer_id:
        link = links.filter(placer_id=update.placer_id).order_by("-pk").first()
    if link is not None:
        return link.referral
    if update.patient_mrn:
        from liaison.core.phi import phi_index

        same_patient = Referral.objects.filter(mrn_key=phi_index(update.patient_mrn), status__in=SCHEDULABLE)
        for candidates in (same_patient.filter(source_system=update.source_system), same_patient):
            found_list = list(candidates.order_by("pk")[:2])
            if len(found_list) == 1:
                return found_list[0]
            if len(found_list) > 1:
                raise Hl7Error(
                    "Several open referrals match this patient: the message must carry the referral id "
                    "(SCH-26 placer order number = RF1-6).",
                    code="204",
                )
    raise Hl7Error(
        "Unknown referral: no referral matches SCH-26/SCH-27, the appointment id or the patient's MRN "
        "(send the REF^I12 first).",
        code="204",
    )


def _schedule(message: hl7.Message) -> tuple[Referral, str]:
    update = hl7.schedule_from_siu(message)
    referral = find_appointment_referral(update)
    referral = Referral.objects.select_for_update().get(pk=referral.pk)
    if update.placer_id or update.filler_id:
        AppointmentLink.objects.get_or_create(
            source_system=update.source_system,
            placer_id=update.placer_id,
            filler_id=update.filler_id,
            referral=referral,
        )
    if update.event == "S26":
        if referral.status == Status.NO_SHOW:
            return referral, "unchanged (already a no-show)"
        _change(referral, Status.NO_SHOW, message, note="No-show reported by the scheduling system.")
        return referral, "no-show"
    if referral.status == Status.SCHEDULED and referral.appointment_at == update.appointment_at:
        return referral, "unchanged (same appointment time)"
    what = "rescheduled" if referral.status == Status.SCHEDULED else "scheduled"
    if referral.status == Status.RECEIVED:
        # Booking the patient is accepting the referral: the history shows both steps.
        _change(
            referral, Status.ACCEPTED, message, note="Accepted: the scheduling system booked an appointment."
        )
        what = "accepted and scheduled"
    _change(referral, Status.SCHEDULED, message, appointment_at=update.appointment_at)
    return referral, what


# --- FHIR --------------------------------------------------------------------------------------


def receive_fhir_referral(data: Any, *, kind: str, actor: Any) -> tuple[Referral, str]:
    """A referral from a posted ServiceRequest or Bundle. Raises fhir.FhirError (400/422) for
    what cannot be read; returns the referral and "created", "updated" or "unchanged"."""
    from liaison.interop import fhir

    fhir.validate_resource(data, kind)
    if kind == "Bundle":
        if data.get("type") not in ("transaction", "batch", "collection", "message", "document"):
            raise fhir.FhirError(
                "Bundle.type must be transaction, batch, collection, message or document.",
                status=400,
                code="invalid",
                expression="Bundle.type",
            )
        resources = fhir.resources_of_bundle(data)
        service_request = fhir.pick_service_request(resources)
    else:
        resources, service_request = fhir.Resources(), data
    incoming = fhir.referral_from_service_request(service_request, resources)
    return receive_incoming(incoming, actor=actor)


# --- file imports (CSV / XLSX) -----------------------------------------------------------------


def create_upload(*, actor: Any, name: str, content: bytes) -> ReferralImport:
    """Keep an uploaded export (encrypted) after checking it reads as a table."""
    from liaison.interop import tabular

    if not content:
        raise ValidationError({"file": ["The file is empty."]})
    if len(content) > tabular.MAX_FILE_BYTES:
        raise ValidationError({"file": [f"Files up to {tabular.MAX_FILE_BYTES // (1024 * 1024)} MB."]})
    try:
        kind = tabular.detect_kind(name, content)
        headers, _ = tabular.read_table(content, kind)
        row_count = tabular.count_rows(content, kind)
    except tabular.FileError as exc:
        raise ValidationError({"file": [str(exc)]}) from None
    if not row_count:
        raise ValidationError({"file": ["The file has a header but no rows."]})
    with transaction.atomic():
        upload = ReferralImport(
            filename=name[:200],
            kind=kind,
            size=len(content),
            headers=headers,
            row_count=row_count,
            created_by=actor if getattr(actor, "pk", None) else None,
        )
        upload.file.save("import.bin", ContentFile(encrypt_bytes(content)), save=False)
        upload.save()
        record(
            actor, "upload", upload, phi=True, changes={"rows": row_count, "kind": kind, "size": len(content)}
        )
    return upload


def read_upload(upload: ReferralImport) -> bytes:
    if not upload.file:
        raise ValidationError({"file": ["The file was deleted after its import: upload it again."]})
    with upload.file.open("rb") as f:
        return decrypt_bytes(f.read())


def mapping_spec(mapping: ColumnMapping) -> Any:
    from liaison.interop.tabular import MappingSpec

    return MappingSpec(
        columns=dict(mapping.columns),
        dob_format=mapping.dob_format,
        date_format=mapping.date_format,
        source_system=mapping.source_system,
    )


@transaction.atomic
def save_mapping(
    *,
    actor: Any,
    name: str,
    columns: dict[str, str],
    dob_format: str,
    date_format: str,
    headers: list[str],
) -> ColumnMapping:
    """Create or update the mapping of that name. Its source key is fixed at creation, so
    renaming a mapping never makes the rows it imported look new."""
    from liaison.interop import tabular

    name = name.strip()
    columns = {k: v for k, v in columns.items() if v and k in tabular.TARGET_LABELS}
    errors = tabular.check_columns(columns, headers)
    if not name:
        errors.setdefault("name", []).append("Name the mapping to use it again next time.")
    if errors:
        raise ValidationError(errors)
    mapping = ColumnMapping.objects.filter(name__iexact=name).first() or ColumnMapping(
        name=name,
        source_system=f"csv:{slugify(name)[:90] or 'import'}",
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    return save_with_audit(
        mapping,
        {
            "name": name,
            "columns": columns,
            "dob_format": dob_format,
            "date_format": date_format,
            "headers": headers,
        },
        actor=actor,
    )


@transaction.atomic
def start_import(upload: ReferralImport, *, actor: Any, skip_bad_rows: bool) -> Any:
    """Queue the import job (all or nothing; or skipping the rows with errors when asked)."""
    from liaison.core.jobs import start_job
    from liaison.interop.tasks import import_referrals

    upload = ReferralImport.objects.select_for_update().get(pk=upload.pk)
    if upload.status in (ReferralImport.Status.IMPORTING, ReferralImport.Status.IMPORTED):
        raise ValidationError({"file": ["This file is already being imported or was imported."]})
    if upload.mapping_id is None:
        raise ValidationError({"mapping": ["Choose the column mapping first."]})
    if not upload.file:
        raise ValidationError({"file": ["The file was deleted: upload it again."]})
    run = start_job(
        kind="referral_import",
        label=f"Referral import #{upload.pk}",
        actor=actor,
        task=import_referrals,
        import_id=upload.pk,
        user_id=actor.pk,
    )
    upload.status, upload.skip_bad_rows, upload.job, upload.result = (
        ReferralImport.Status.IMPORTING,
        skip_bad_rows,
        run,
        {},
    )
    upload.save(update_fields=["status", "skip_bad_rows", "job", "result"])
    record(actor, "import_start", upload, changes={"skip_bad_rows": skip_bad_rows, "job": run.pk})
    return run


def finish_import(upload: ReferralImport, result: Any, *, imported: bool) -> None:
    """Record the outcome; an imported file is deleted (it is patient data we no longer need)."""
    upload.status = ReferralImport.Status.IMPORTED if imported else ReferralImport.Status.FAILED
    upload.result = {**result.summary(), "errors": [[n, m] for n, m in result.errors]}
    upload.finished_at = timezone.now()
    if imported and upload.file:
        upload.file.delete(save=False)
    upload.save(update_fields=["status", "result", "finished_at", "file"])


def delete_upload_file(upload: ReferralImport) -> None:
    if upload.file:
        upload.file.delete(save=False)
        upload.save(update_fields=["file"])
