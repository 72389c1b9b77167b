from django.contrib import admin

from liaison.core.admin import AuditedModelAdmin
from liaison.referrals.models import Holiday, OfficePreference, ServiceLine


@admin.register(ServiceLine)
class ServiceLineAdmin(AuditedModelAdmin):
    list_display = ["name", "first_contact_days", "appointment_days", "note_days", "is_active"]


@admin.register(Holiday)
class HolidayAdmin(AuditedModelAdmin):
    list_display = ["date", "name"]


@admin.register(OfficePreference)
class OfficePreferenceAdmin(AuditedModelAdmin):
    list_display = ["location", "notify_by", "contact"]
    raw_id_fields = ["location", "contact"]


# Referrals themselves are not in the admin: their patient data is shown only by the pages,
# which audit every view.
