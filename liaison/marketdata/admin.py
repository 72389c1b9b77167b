from django.contrib import admin
from django.http import HttpRequest

from liaison.core.admin import AuditedModelAdmin
from liaison.marketdata.models import (
    DirectoryChange,
    ImportRun,
    MedicareProfile,
    NppesRecord,
    Opportunity,
    ProcedureVolume,
    Prospect,
    SharedPatientDataset,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Imported data: written by the importers, looked at here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(ImportRun)
class ImportRunAdmin(ReadOnlyAdmin):
    list_display = [
        "pk",
        "kind",
        "file_name",
        "status",
        "rows_read",
        "rows_kept",
        "inserted",
        "updated",
        "rejected",
        "started_at",
    ]
    list_filter = ["kind", "status"]


@admin.register(NppesRecord)
class NppesRecordAdmin(ReadOnlyAdmin):
    list_display = ["npi", "entity_type", "address", "updated_on", "deactivated_on", "hand_edited"]
    search_fields = ["npi", "address"]
    raw_id_fields = ["provider", "practice", "location", "first_run", "last_run"]


@admin.register(DirectoryChange)
class DirectoryChangeAdmin(ReadOnlyAdmin):
    list_display = ["run", "kind", "name", "npi", "distance_miles"]
    list_filter = ["kind"]
    search_fields = ["npi", "name"]


@admin.register(SharedPatientDataset)
class SharedPatientDatasetAdmin(ReadOnlyAdmin):
    list_display = ["key", "source", "year", "window_days", "pairs", "imported_at"]


@admin.register(ProcedureVolume)
class ProcedureVolumeAdmin(ReadOnlyAdmin):
    list_display = ["npi", "year", "hcpcs_code", "hcpcs_description", "beneficiaries", "services"]
    search_fields = ["npi", "hcpcs_code"]


@admin.register(MedicareProfile)
class MedicareProfileAdmin(ReadOnlyAdmin):
    list_display = ["npi", "year", "beneficiaries", "dual_eligible", "not_dual_eligible"]
    search_fields = ["npi"]


@admin.register(Opportunity)
class OpportunityAdmin(ReadOnlyAdmin):
    list_display = ["provider", "score", "distance_miles", "shared_with_us", "shared_with_competitors"]
    raw_id_fields = ["provider", "practice", "location", "nearest_site"]


@admin.register(Prospect)
class ProspectAdmin(AuditedModelAdmin):
    list_display = ["practice", "provider", "flagged_by", "flagged_at", "score"]
    raw_id_fields = ["practice", "provider", "flagged_by"]
