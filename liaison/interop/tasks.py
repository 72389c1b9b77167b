"""Intake jobs: import an uploaded file in the background; forget raw HL7 and stale uploads."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from liaison.core.jobs import JobFailed, job, periodic, running_job

KEEP_RAW_HL7_DAYS = 30
KEEP_UPLOADS_DAYS = 2


@job
def import_referrals(job_run_id: int, import_id: int, user_id: int | None = None) -> dict:
    from liaison.accounts.models import User
    from liaison.interop import bulk, services, tabular
    from liaison.interop.models import ReferralImport

    with running_job(job_run_id) as progress:
        upload = ReferralImport.objects.select_related("mapping").get(pk=import_id)
        actor = User.objects.filter(pk=user_id).first() or f"file import #{upload.pk}"
        try:
            content = services.read_upload(upload)
            result = bulk.import_table(
                content,
                upload.kind,
                services.mapping_spec(upload.mapping),
                actor=actor,
                skip_bad_rows=upload.skip_bad_rows,
                progress=progress,
                label=f"file import #{upload.pk}",
                total=upload.row_count,
            )
        except (tabular.FileError, services.ValidationError) as exc:
            services.finish_import(upload, bulk.ImportResult(), imported=False)
            text = str(exc) if isinstance(exc, tabular.FileError) else " ".join(exc.messages)
            raise JobFailed(f"Nothing was imported: {text}") from None
        except Exception:
            services.finish_import(upload, bulk.ImportResult(), imported=False)
            raise
        if result.error_rows and not upload.skip_bad_rows:
            services.finish_import(upload, result, imported=False)
            raise JobFailed(
                f"{result.error_rows} row(s) have errors: nothing was imported. "
                "Fix the file or the mapping, or import again skipping those rows."
            )
        services.finish_import(upload, result, imported=True)
        summary = result.summary()
        progress.finish(f"{result.created} referral(s) imported.", summary)
        return summary


@periodic(every=timedelta(days=1), offset=timedelta(hours=7, minutes=30))
@job
def forget_intake_data() -> dict[str, int]:
    """Patient data kept only as long as needed: raw HL7 messages after KEEP_RAW_HL7_DAYS (their
    log row stays, without the message), uploaded files never imported after KEEP_UPLOADS_DAYS."""
    from liaison.interop.models import Hl7Message, ReferralImport

    now = timezone.now()
    raw = (
        Hl7Message.objects.filter(received_at__lt=now - timedelta(days=KEEP_RAW_HL7_DAYS))
        .exclude(raw="")
        .update(raw="")
    )
    files = 0
    stale = ReferralImport.objects.filter(created_at__lt=now - timedelta(days=KEEP_UPLOADS_DAYS)).exclude(
        status=ReferralImport.Status.IMPORTING
    )
    for upload in stale.exclude(file=""):
        upload.file.delete(save=False)
        upload.save(update_fields=["file"])
        files += 1
    return {"raw_messages": raw, "files": files}
