"""Market-data imports as background jobs, started from the admin import page."""

from __future__ import annotations

from typing import Any

from liaison.core.jobs import JobFailed, job, running_job
from liaison.core.models import JobRun
from liaison.directory.models import Location
from liaison.marketdata.models import ImportKind
from liaison.marketdata.scan import ImportFileError


@job
def run_market_import(job_run_id: int, kind_name: str, file_name: str, options: dict[str, Any]) -> dict:
    from liaison.marketdata.nppes import importer_for
    from liaison.marketdata.services import import_dir
    from liaison.marketdata.shared_patients import SharedPatientsImport
    from liaison.marketdata.utilization import UtilizationImport

    actor = JobRun.objects.select_related("created_by").get(pk=job_run_id).created_by or "import job"
    path = import_dir() / file_name
    kwargs: dict[str, Any] = {}
    if kind_name == ImportKind.NPPES:
        importer_class = importer_for(path)
        sites = list(Location.objects.sites().filter(pk__in=options.get("near_sites") or []))
        kwargs = {
            "states": options.get("states") or [],
            "near_sites": sites,
            "radius_miles": options.get("radius_miles"),
            "taxonomy": options.get("taxonomy") or [],
            "entity": options.get("entity") or "",
        }
    elif kind_name == ImportKind.SHARED_PATIENTS:
        importer_class = SharedPatientsImport
        kwargs = {"window": options.get("window"), "year": options.get("year")}
    else:
        importer_class = UtilizationImport
        kwargs = {"year": options.get("year")}
    with running_job(job_run_id) as progress:
        try:
            importer = importer_class(
                path,
                actor=actor,
                progress=progress,
                force=bool(options.get("force")),
                job_run=JobRun.objects.get(pk=job_run_id),
                **kwargs,
            )
            importer.execute()
        except ImportFileError as exc:
            raise JobFailed(str(exc)) from exc
        run = importer.run
        result = run.result()
        if importer.already_done:
            message = f"{run.file_name} was already imported (import #{run.pk}); nothing to do. Tick 'read again' to force."
            progress.finish(message, result)
        return result
