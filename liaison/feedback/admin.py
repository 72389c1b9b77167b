from __future__ import annotations

from django.contrib import admin

from liaison.core.admin import AuditedModelAdmin
from liaison.feedback.models import Issue, Survey, SurveyResponse
from liaison.outreach.admin import ReadOnlyAdmin


@admin.register(Survey)
class SurveyAdmin(AuditedModelAdmin):
    list_display = ["title", "is_active", "created_at"]


@admin.register(Issue)
class IssueAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "practice", "category", "severity", "status", "assignee", "due_on"]
    list_filter = ["status", "category", "severity"]


@admin.register(SurveyResponse)
class SurveyResponseAdmin(ReadOnlyAdmin):
    list_display = ["practice", "nps", "submitted_at"]
