"""The admin: reference data editable (limits, tiers, collateral); activities, accounts and the
ledger read-only here, because their services keep the ledger and the stage history consistent."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from liaison.core.admin import AuditedModelAdmin
from liaison.outreach.models import (
    Account,
    AccountStageChange,
    Activity,
    CadenceRule,
    CollateralItem,
    CompensationLimit,
    LedgerEntry,
    Task,
    Territory,
    Tier,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(CompensationLimit)
class CompensationLimitAdmin(AuditedModelAdmin):
    list_display = ["year", "amount", "note"]


class CadenceRuleInline(admin.TabularInline):
    model = CadenceRule
    extra = 0


@admin.register(Tier)
class TierAdmin(AuditedModelAdmin):
    list_display = ["code", "name", "rank"]
    inlines = [CadenceRuleInline]


@admin.register(CollateralItem)
class CollateralItemAdmin(AuditedModelAdmin):
    list_display = ["title", "kind", "is_active"]
    list_filter = ["kind", "is_active"]


@admin.register(Territory)
class TerritoryAdmin(ReadOnlyAdmin):
    list_display = ["name", "liaison"]


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "stage", "tier", "owner", "trend"]
    list_filter = ["stage", "tier", "trend", "source"]
    search_fields = ["practice__name"]


@admin.register(AccountStageChange)
class AccountStageChangeAdmin(ReadOnlyAdmin):
    list_display = ["account", "from_stage", "to_stage", "at", "actor_label"]


@admin.register(Activity)
class ActivityAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "kind", "status", "liaison", "cost"]
    list_filter = ["kind", "status"]
    date_hierarchy = "occurred_at"


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ["provider", "on", "year", "amount", "activity"]
    list_filter = ["year"]


@admin.register(Task)
class TaskAdmin(ReadOnlyAdmin):
    list_display = ["title", "assignee", "due_on", "status", "kind"]
    list_filter = ["status", "kind"]
