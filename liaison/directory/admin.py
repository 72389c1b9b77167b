from django.contrib import admin

from liaison.core.admin import AuditedModelAdmin
from liaison.directory.models import Contact, Location, Practice, Provider, Taxonomy


@admin.register(Taxonomy)
class TaxonomyAdmin(AuditedModelAdmin):
    list_display = ["code", "classification", "specialization", "grouping"]
    search_fields = ["code", "classification", "specialization", "display_name"]


@admin.register(Practice)
class PracticeAdmin(AuditedModelAdmin):
    list_display = ["name", "organization_npi", "is_ours", "is_active", "source"]
    list_filter = ["is_ours", "is_active", "source"]
    search_fields = ["name", "organization_npi"]


@admin.register(Location)
class LocationAdmin(AuditedModelAdmin):
    list_display = ["__str__", "city", "state", "zip_code", "is_active"]
    list_filter = ["state", "is_active"]
    search_fields = ["practice__name", "city", "zip_code"]
    raw_id_fields = ["practice"]


@admin.register(Provider)
class ProviderAdmin(AuditedModelAdmin):
    list_display = ["last_name", "first_name", "credential", "npi", "is_ours", "status"]
    list_filter = ["is_ours", "status", "source"]
    search_fields = ["last_name", "first_name", "npi"]
    raw_id_fields = ["primary_taxonomy"]
    filter_horizontal = ["secondary_taxonomies", "locations"]


@admin.register(Contact)
class ContactAdmin(AuditedModelAdmin):
    list_display = ["last_name", "first_name", "role", "practice", "email", "email_consent"]
    list_filter = ["role", "email_consent"]
    search_fields = ["last_name", "first_name", "email", "practice__name"]
    raw_id_fields = ["practice", "location"]
