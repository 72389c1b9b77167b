from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.utils import timezone

from liaison.accounts.models import User
from liaison.directory.models import Contact, ContactRole, Location, Provider
from liaison.directory.selectors import our_physicians
from liaison.feedback.validators import no_patient_identifiers
from liaison.outreach import selectors
from liaison.outreach.models import (
    Account,
    ActivityKind,
    ActivityStatus,
    CadenceUnit,
    CollateralItem,
    CollateralKind,
    Purpose,
    Stage,
    Task,
    Tier,
    Touch,
    Trend,
)
from liaison.outreach.services import FollowUp, NewAttendee

NEW_ATTENDEE_ROWS = 2
DATETIME_FORMAT = "%Y-%m-%dT%H:%M"


class ProviderChoice(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Provider) -> str:
        extra = f" · {obj.primary_taxonomy.name}" if obj.primary_taxonomy_id else ""
        return f"{obj.display_name}{extra}"


class ContactChoice(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Contact) -> str:
        return f"{obj} · {obj.get_role_display()}"


def _now_rounded() -> datetime:
    now = timezone.localtime()
    return now - timedelta(minutes=now.minute % 5, seconds=now.second, microseconds=now.microsecond)


class ActivityForm(forms.Form):
    """The liaison's form, phone first: the kind, who was there (both sides), what came of it,
    the next step. Everything else is folded away."""

    kind = forms.ChoiceField(
        choices=ActivityKind.choices, widget=forms.RadioSelect, initial=ActivityKind.VISIT
    )
    occurred_at = forms.DateTimeField(
        label="When",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_FORMAT),
        input_formats=[DATETIME_FORMAT, "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"],
    )
    status = forms.ChoiceField(
        choices=[(ActivityStatus.COMPLETED, "Done"), (ActivityStatus.PLANNED, "Planned")],
        initial=ActivityStatus.COMPLETED,
        widget=forms.RadioSelect,
        label="Status",
    )
    location = forms.ModelChoiceField(queryset=Location.objects.none(), required=False, label="Office")
    our_physicians = ProviderChoice(
        queryset=Provider.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Our physicians",
    )
    providers = ProviderChoice(
        queryset=Provider.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Their providers",
    )
    contacts = ContactChoice(
        queryset=Contact.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Their staff",
    )
    purpose = forms.ChoiceField(choices=[("", "—"), *Purpose.choices], required=False)
    outcome = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=4000,
        validators=[no_patient_identifiers],
        help_text="no patient names or identifiers: liaisons read this",
    )
    cost = forms.DecimalField(
        required=False,
        min_value=Decimal("0"),
        max_digits=8,
        decimal_places=2,
        label="Cost ($)",
        widget=forms.NumberInput(attrs={"inputmode": "decimal", "step": "0.01"}),
        help_text="food and gifts: shared per head, counted for referring physicians",
    )
    office_head_count = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=500,
        label="People served from the office",
        help_text="if more ate than are listed",
    )
    topics = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=4000,
        validators=[no_patient_identifiers],
    )
    clinical_questions = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=4000,
        label="Clinical questions raised",
        validators=[no_patient_identifiers],
    )
    duration_minutes = forms.IntegerField(
        required=False, min_value=0, max_value=24 * 60, label="Minutes spent"
    )
    next_step = forms.CharField(
        required=False, max_length=200, label="Next step", validators=[no_patient_identifiers]
    )
    follow_up_due = forms.DateField(
        required=False,
        label="Task due",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="with a next step, it becomes a task due on this date",
    )
    follow_up_assignee = forms.ModelChoiceField(
        queryset=User.objects.none(), required=False, label="Task for"
    )
    confirm_over_limit = forms.BooleanField(
        required=False, label="Record it anyway: I understand this takes a physician over the yearly limit"
    )

    def __init__(
        self,
        *args: Any,
        account: Account | None,
        user: User,
        activity: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.account, self.user, self.activity = account, user, activity
        self.fields["our_physicians"].queryset = our_physicians()
        self.fields["our_physicians"].label_from_instance = lambda p: p.display_name
        if account is not None:
            providers, contacts = selectors.account_people(account)
            extra_p = extra_c = []
            if activity is not None:  # people who attended but left the office since stay listed
                current = list(activity.attendees.all())
                extra_p = [a.provider_id for a in current if a.provider_id and not a.is_ours]
                extra_c = [a.contact_id for a in current if a.contact_id]
            self.fields["providers"].queryset = (
                Provider.objects.filter(pk__in=[p.pk for p in providers] + extra_p)
                .select_related("primary_taxonomy")
                .order_by("last_name", "first_name")
            )
            self.fields["contacts"].queryset = Contact.objects.filter(
                pk__in=[c.pk for c in contacts] + extra_c
            ).order_by("last_name", "first_name")
            locations = account.practice.locations.filter(is_active=True).order_by("pk")
            self.fields["location"].queryset = locations
            self.fields["location"].empty_label = None
            self.show_location = len(locations) > 1 and account.location_id is None
        else:
            self.show_location = False
        self.fields["follow_up_assignee"].queryset = selectors.assignable_users()
        self.fields["follow_up_assignee"].label_from_instance = lambda u: (
            f"{u} ({u.get_role_display().lower()})"
        )
        if activity is not None:
            self.fields["status"].choices = ActivityStatus.choices
        for i in range(1, NEW_ATTENDEE_ROWS + 1):
            self.fields[f"new_{i}_first_name"] = forms.CharField(
                required=False, max_length=80, label="First name"
            )
            self.fields[f"new_{i}_last_name"] = forms.CharField(
                required=False, max_length=80, label="Last name"
            )
            self.fields[f"new_{i}_role"] = forms.ChoiceField(
                required=False, choices=ContactRole.choices, initial=ContactRole.OTHER, label="Role"
            )
        self.material_items = list(CollateralItem.objects.filter(is_active=True).order_by("title"))
        for item in self.material_items:
            self.fields[f"material_{item.pk}"] = forms.IntegerField(
                required=False,
                min_value=0,
                max_value=10000,
                label=item.title,
                widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
            )
        if not self.is_bound:
            self._set_initial()

    def _set_initial(self) -> None:
        a = self.activity
        if a is None:
            self.initial.setdefault("occurred_at", _now_rounded())
            self.initial.setdefault("follow_up_assignee", self.user.pk)
            self.initial.setdefault("follow_up_due", timezone.localdate() + timedelta(days=7))
            if self.account is not None:
                self.initial.setdefault(
                    "location",
                    self.account.location_id or getattr(selectors.account_location(self.account), "pk", None),
                )
            return
        attendees = list(a.attendees.all())
        self.initial.update(
            kind=a.kind,
            status=a.status,
            occurred_at=timezone.localtime(a.occurred_at),
            location=a.location_id,
            our_physicians=[x.provider_id for x in attendees if x.is_ours],
            providers=[x.provider_id for x in attendees if x.provider_id and not x.is_ours],
            contacts=[x.contact_id for x in attendees if x.contact_id],
            purpose=a.purpose,
            outcome=a.outcome,
            cost=a.cost if a.cost else None,
            office_head_count=a.office_head_count,
            topics=a.topics,
            clinical_questions=a.clinical_questions,
            duration_minutes=a.duration_minutes,
            next_step=a.next_step,
            follow_up_due=None,
        )
        for m in a.materials.all():
            self.initial[f"material_{m.item_id}"] = m.quantity

    def new_attendee_rows(self) -> list[tuple[Any, Any, Any]]:
        return [
            (self[f"new_{i}_first_name"], self[f"new_{i}_last_name"], self[f"new_{i}_role"])
            for i in range(1, NEW_ATTENDEE_ROWS + 1)
        ]

    def material_fields(self) -> list[Any]:
        return [self[f"material_{item.pk}"] for item in self.material_items]

    def clean(self) -> dict:
        data = super().clean()
        for i in range(1, NEW_ATTENDEE_ROWS + 1):
            if data.get(f"new_{i}_last_name") and not data.get(f"new_{i}_first_name"):
                self.add_error(f"new_{i}_first_name", "A first name, please.")
        # The due date is prefilled, so only a next step asks for a task: a visit saved without
        # one is just a visit, whatever the date field still says.
        if data.get("next_step") and data.get("follow_up_due") and not data.get("follow_up_assignee"):
            self.add_error("follow_up_assignee", "Who does it?")
        when = data.get("occurred_at")
        if (
            when
            and data.get("status") == ActivityStatus.COMPLETED
            and when > timezone.now() + timedelta(minutes=30)
        ):
            data["status"] = ActivityStatus.PLANNED  # a time ahead is a plan, whatever the default said
        return data

    def error_summary(self) -> list[tuple[str, str, str]]:
        """(anchor id, label, first message) of each field in error, for the short list at the top
        of the form: on a phone the field itself may be screens below."""
        return [
            (self[name].id_for_label or self[name].auto_id, str(self[name].label), errors[0])
            for name, errors in self.errors.items()
            if name in self.fields
        ]

    def service_kwargs(self) -> dict[str, Any]:
        d = self.cleaned_data
        new = [
            NewAttendee(
                d.get(f"new_{i}_first_name", ""),
                d.get(f"new_{i}_last_name", ""),
                d.get(f"new_{i}_role") or ContactRole.OTHER,
            )
            for i in range(1, NEW_ATTENDEE_ROWS + 1)
            if d.get(f"new_{i}_first_name")
        ]
        follow_up = None
        if d.get("follow_up_due") and d.get("next_step"):
            follow_up = FollowUp(d["next_step"], d["follow_up_due"], d["follow_up_assignee"])
        kwargs: dict[str, Any] = {
            "kind": d["kind"],
            "status": d["status"],
            "occurred_at": d["occurred_at"],
            "our_physicians": list(d["our_physicians"]),
            "providers": list(d["providers"]),
            "contacts": list(d["contacts"]),
            "new_attendees": new,
            "purpose": d.get("purpose") or "",
            "outcome": d.get("outcome") or "",
            "cost": d.get("cost") or Decimal("0"),
            "office_head_count": d.get("office_head_count"),
            "topics": d.get("topics") or "",
            "clinical_questions": d.get("clinical_questions") or "",
            "duration_minutes": d.get("duration_minutes"),
            "next_step": d.get("next_step") or "",
            "follow_up": follow_up,
            "confirm_over_limit": d.get("confirm_over_limit", False),
            "materials": {item: d.get(f"material_{item.pk}") or 0 for item in self.material_items},
        }
        if self.account is not None and d.get("location") is not None:
            kwargs["location"] = d["location"]
        return kwargs


class AccountPickForm(forms.Form):
    account = forms.ModelChoiceField(queryset=Account.objects.none(), label="Which office?")

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        mine = list(
            Account.objects.filter(owner=user)
            .select_related("practice", "location")
            .order_by("practice__name")
        )
        others = list(
            Account.objects.exclude(owner=user)
            .select_related("practice", "location")
            .order_by("practice__name")
        )
        self.fields["account"].queryset = Account.objects.all()
        self.fields["account"].choices = [
            ("", "Pick an office"),
            *([("My accounts", [(a.pk, str(a)) for a in mine])] if mine else []),
            ("All accounts", [(a.pk, str(a)) for a in others]),
        ]


class AccountSearchForm(forms.Form):
    q = forms.CharField(required=False, label="Practice or city", max_length=100)
    stage = forms.ChoiceField(required=False, choices=[("", "any stage"), *Stage.choices])
    tier = forms.ModelChoiceField(queryset=Tier.objects.all(), required=False, empty_label="any tier")
    owner = forms.ChoiceField(required=False, label="Owner")
    trend = forms.ChoiceField(
        required=False, choices=[("", "any trend"), *[c for c in Trend.choices if c[0]]]
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["owner"].choices = [
            ("", "anyone"),
            ("me", "mine"),
            ("none", "no owner"),
            *[(str(u.pk), str(u)) for u in selectors.liaisons()],
        ]

    def filters(self) -> selectors.AccountFilters:
        d = self.cleaned_data if self.is_valid() else {}
        return selectors.AccountFilters(
            q=d.get("q", ""),
            stage=d.get("stage", ""),
            tier=d.get("tier"),
            owner=d.get("owner", ""),
            trend=d.get("trend", ""),
        )


class AccountForm(forms.Form):
    tier = forms.ModelChoiceField(queryset=Tier.objects.all(), required=False, empty_label="no tier")
    owner = forms.ModelChoiceField(queryset=User.objects.none(), required=False, empty_label="nobody")
    follow_territory = forms.BooleanField(required=False, label="Owner follows the territory")
    potential = forms.CharField(
        required=False, max_length=300, help_text="why it matters", validators=[no_patient_identifiers]
    )

    def __init__(self, *args: Any, can_reassign: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = selectors.liaisons()
        if not can_reassign:
            del self.fields["owner"]
            del self.fields["follow_territory"]


class StageForm(forms.Form):
    stage = forms.ChoiceField(choices=Stage.choices)
    reason = forms.CharField(required=False, max_length=300, validators=[no_patient_identifiers])


class AddToPipelineForm(forms.Form):
    tier = forms.ModelChoiceField(queryset=Tier.objects.all(), required=False, empty_label="no tier yet")
    location = forms.ModelChoiceField(
        queryset=Location.objects.none(),
        required=False,
        empty_label="the whole practice",
        label="Account for",
    )
    note = forms.CharField(
        required=False, max_length=300, label="Why (optional)", validators=[no_patient_identifiers]
    )

    def __init__(self, *args: Any, practice: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["location"].queryset = practice.locations.filter(is_active=True)


class TaskForm(forms.ModelForm):
    class Meta:
        model = Task
        fields = ["title", "due_on", "assignee", "details"]
        widgets = {
            "due_on": forms.DateInput(attrs={"type": "date"}),
            "details": forms.Textarea(attrs={"rows": 3}),
        }
        labels = {"due_on": "Due", "assignee": "For"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = selectors.assignable_users()
        self.fields["assignee"].label_from_instance = lambda u: f"{u} ({u.get_role_display().lower()})"


class TerritoryForm(forms.Form):
    name = forms.CharField(max_length=100)
    liaison = forms.ModelChoiceField(queryset=User.objects.none(), required=False, empty_label="nobody yet")
    zip_codes = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="ZIP codes",
        help_text="separated by commas or spaces",
    )
    counties = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="one per line, e.g. Franklin County, OH",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["liaison"].queryset = User.objects.filter(role="liaison", is_active=True)

    def zip_list(self) -> list[str]:
        return self.cleaned_data["zip_codes"].replace(",", " ").split()

    def county_list(self) -> list[str]:
        return [c.strip() for c in self.cleaned_data["counties"].replace(";", "\n").splitlines() if c.strip()]


class CadenceRuleForm(forms.Form):
    touch = forms.ChoiceField(choices=[("", "—"), *Touch.choices], required=False)
    every = forms.IntegerField(min_value=1, max_value=366, required=False)
    unit = forms.ChoiceField(choices=CadenceUnit.choices, required=False)


CadenceRuleFormSet = forms.formset_factory(CadenceRuleForm, extra=1, max_num=3)


class LimitForm(forms.Form):
    year = forms.IntegerField(min_value=2000, max_value=2100)
    amount = forms.DecimalField(min_value=Decimal("0"), max_digits=8, decimal_places=2, label="Limit ($)")
    note = forms.CharField(required=False, max_length=200)


class CollateralForm(forms.Form):
    title = forms.CharField(max_length=150)
    kind = forms.ChoiceField(choices=CollateralKind.choices)
    description = forms.CharField(required=False, max_length=300)
    file = forms.FileField(required=False)
    is_active = forms.BooleanField(required=False, initial=True, label="Still handed out")


class RouteForm(forms.Form):
    day = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    start_site = forms.ModelChoiceField(
        queryset=Location.objects.none(), required=False, empty_label="home (ZIP below)", label="Start from"
    )
    home_zip = forms.CharField(required=False, max_length=10, label="Home ZIP")
    day_start = forms.TimeField(
        widget=forms.TimeInput(attrs={"type": "time"}), initial="08:00", label="Leave at"
    )
    day_end = forms.TimeField(
        widget=forms.TimeInput(attrs={"type": "time"}), initial="17:00", label="Done by"
    )
    visit_minutes = forms.IntegerField(min_value=5, max_value=240, initial=20, label="Visit length (min)")
    lunch_from = forms.TimeField(
        widget=forms.TimeInput(attrs={"type": "time"}), initial="11:30", label="Lunches start from"
    )
    lunch_to = forms.TimeField(
        widget=forms.TimeInput(attrs={"type": "time"}), initial="12:30", label="… and by"
    )
    lunch_minutes = forms.IntegerField(min_value=15, max_value=180, initial=60, label="Lunch length (min)")
    return_to_start = forms.BooleanField(required=False, initial=True, label="Come back to the start")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from liaison.directory.selectors import our_sites

        self.fields["start_site"].queryset = our_sites()

    def clean(self) -> dict:
        from liaison.core.geo import zip_info

        data = super().clean()
        if not data.get("start_site"):
            info = zip_info(data.get("home_zip") or "")
            if info is None:
                self.add_error("home_zip", "Pick a site to start from, or give your home ZIP code.")
            else:
                data["start_point"] = (info.latitude, info.longitude)
        else:
            site = data["start_site"]
            data["start_point"] = (site.latitude, site.longitude)
        if data.get("day_start") and data.get("day_end") and data["day_end"] <= data["day_start"]:
            self.add_error("day_end", "The day must end after it starts.")
        if data.get("lunch_from") and data.get("lunch_to") and data["lunch_to"] < data["lunch_from"]:
            self.add_error("lunch_to", "The lunch window ends before it starts.")
        return data
