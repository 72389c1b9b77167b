"""Writes of the market data that users make: flag a prospect, start an import."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from liaison.audit.services import record
from liaison.core.jobs import start_job
from liaison.core.models import JobRun
from liaison.directory.models import Practice, Provider
from liaison.marketdata.models import ImportKind, Opportunity, Prospect
from liaison.marketdata.selectors import practice_to_flag


def flag_prospect(
    *, actor: Any, provider: Provider | None = None, practice: Practice | None = None
) -> tuple[Prospect, bool]:
    """Add a provider (with its practice) or a practice to the outreach pipeline. Flagging twice
    changes nothing. Returns (prospect, created)."""
    if getattr(actor, "pk", None) and not actor.can_flag_prospects:
        raise PermissionDenied("Your role cannot add prospects to the outreach pipeline.")
    if provider is None and practice is None:
        raise ValidationError({"provider": ["Choose a provider or a practice."]})
    if provider is not None:
        if provider.is_ours:
            raise ValidationError({"provider": ["This is one of our physicians, not a prospect."]})
        practice = practice or practice_to_flag(provider)
        if practice is None:
            raise ValidationError(
                {"provider": ["This provider has no practice in the directory: add their office first."]}
            )
    if practice.is_ours:
        raise ValidationError({"practice": ["This is our own organisation."]})
    existing = Prospect.objects.filter(practice=practice, provider=provider).first()
    if existing is not None:
        return existing, False
    opportunity = Opportunity.objects.filter(provider=provider).first() if provider is not None else None
    user = actor if getattr(actor, "pk", None) else None
    try:
        with transaction.atomic():
            prospect = Prospect.objects.create(
                practice=practice,
                provider=provider,
                flagged_by=user,
                flagged_at=timezone.now(),
                score=opportunity.score if opportunity else None,
                explanation=opportunity.explanation if opportunity else "",
            )
            record(
                actor,
                "flag_prospect",
                prospect,
                changes={
                    "practice": [None, practice.pk],
                    "provider": [None, provider.pk if provider else None],
                    "score": [None, prospect.score],
                },
            )
            _open_account(prospect, actor)
    except IntegrityError:  # flagged by someone else at the same moment
        return Prospect.objects.get(practice=practice, provider=provider), False
    return prospect, True


def _open_account(prospect: Prospect, actor: Any) -> None:
    """The flag puts the practice in the outreach pipeline, at "target" (nothing changes for a
    practice already there), with the opportunity's explanation as its potential."""
    from liaison.outreach.models import AccountSource
    from liaison.outreach.services import add_to_pipeline

    who = f"{prospect.provider.display_name}: " if prospect.provider else ""
    add_to_pipeline(
        prospect.practice,
        actor=actor,
        source=AccountSource.MARKET_DATA,
        note="flagged on the Opportunities page",
        potential=(who + prospect.explanation)[:300],
    )


def import_dir() -> Path:
    path = Path(settings.MARKETDATA_IMPORT_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def available_files() -> list[Path]:
    """Files an admin can import from the page: those put in MARKETDATA_IMPORT_DIR."""
    return sorted(
        (p for p in import_dir().iterdir() if p.is_file() and not p.name.startswith(".")),
        key=lambda p: p.name.lower(),
    )


def start_import(*, actor: Any, kind: str, file_name: str, options: dict[str, Any]) -> JobRun:
    """Start an import as a background job (admins only); the page follows it at /jobs/<id>/."""
    from liaison.marketdata.tasks import run_market_import

    if not getattr(actor, "is_admin", False):
        raise PermissionDenied("Only an admin can import market data.")
    if kind not in ImportKind.values or kind == ImportKind.DEACTIVATIONS:
        raise ValidationError({"kind": ["Choose what kind of file this is."]})
    names = {p.name for p in available_files()}
    if file_name not in names:
        raise ValidationError({"file_name": [f"{file_name} is not in the import folder."]})
    label = f"Import {ImportKind(kind).label}: {file_name}"
    with transaction.atomic():
        run = start_job(
            kind=f"marketdata.{kind}",
            label=label,
            actor=actor,
            task=run_market_import,
            kind_name=kind,
            file_name=file_name,
            options=options,
        )
        record(actor, "start_import", run, object_repr=label[:200], changes={"options": options})
    return run


def save_upload(uploaded: Any) -> str:
    """Put an uploaded file in the import folder (under a safe name) and return that name."""
    name = Path(uploaded.name).name.replace("/", "_").replace("\\", "_").lstrip(".") or "upload.csv"
    target = import_dir() / name
    stem, suffix, n = target.stem, target.suffix, 1
    while target.exists():
        n += 1
        target = import_dir() / f"{stem}-{n}{suffix}"
    with open(target, "wb") as f:
        for chunk in uploaded.chunks():
            f.write(chunk)
    return target.name
