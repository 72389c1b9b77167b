"""The Django admin for campaigns (admins only): mostly to look; writes are audited."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from liaison.campaigns.models import Campaign, QuizDraw, Recipient, Segment, Suppression, Template
from liaison.core.admin import AuditedModelAdmin


@admin.register(Segment)
class SegmentAdmin(AuditedModelAdmin):
    list_display = ["name", "created_by", "updated_at"]
    search_fields = ["name"]


@admin.register(Template)
class TemplateAdmin(AuditedModelAdmin):
    list_display = ["name", "channel", "subject", "is_active"]
    list_filter = ["channel", "is_active"]


@admin.register(Campaign)
class CampaignAdmin(AuditedModelAdmin):
    list_display = ["name", "kind", "status", "started_at", "finished_at", "created_by"]
    list_filter = ["kind", "status"]
    readonly_fields = [
        "status",
        "started_at",
        "finished_at",
        "audience",
        "sender_token",
        "lease_until",
        "retry_at",
    ]


@admin.register(Recipient)
class RecipientAdmin(AuditedModelAdmin):
    list_display = ["name", "email", "campaign", "status", "attempts", "sent_at"]
    list_filter = ["status"]
    search_fields = ["email", "name"]
    readonly_fields = [f.name for f in Recipient._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Suppression)
class SuppressionAdmin(AuditedModelAdmin):
    list_display = ["email", "reason", "at", "campaign"]
    list_filter = ["reason"]
    search_fields = ["email"]


@admin.register(QuizDraw)
class QuizDrawAdmin(admin.ModelAdmin):
    list_display = ["quiz", "rule", "seed", "winner", "drawn_at", "actor_label"]
    readonly_fields = [f.name for f in QuizDraw._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
