from __future__ import annotations

from typing import Any

from django import forms

from liaison.accounts.models import User
from liaison.directory.models import Contact, Location, Practice
from liaison.feedback.models import InformedBy, Issue, IssueCategory, IssueStatus, Severity
from liaison.feedback.services import ISSUE_ASSIGNEE_ROLES
from liaison.feedback.validators import NOTICE


def _assignees() -> Any:
    return User.objects.filter(is_active=True, role__in=ISSUE_ASSIGNEE_ROLES).order_by("role", "full_name")


class IssueForm(forms.ModelForm):
    class Meta:
        model = Issue
        fields = ["reporter", "location", "category", "severity", "summary", "details", "assignee", "due_on"]
        widgets = {
            "details": forms.Textarea(attrs={"rows": 4}),
            "due_on": forms.DateInput(attrs={"type": "date"}),
        }
        labels = {"reporter": "Raised by", "location": "Office", "due_on": "Due"}
        help_texts = {
            "details": NOTICE,
            "due_on": "left blank: from the severity (critical 1 day … low 14 days)",
        }

    def __init__(self, *args: Any, practice: Practice, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.instance.practice = practice
        self.fields["reporter"].queryset = Contact.objects.filter(practice=practice, is_active=True).order_by(
            "last_name"
        )
        self.fields["reporter"].label_from_instance = lambda c: f"{c} ({c.get_role_display().lower()})"
        self.fields["location"].queryset = Location.objects.filter(practice=practice)
        self.fields["location"].empty_label = "(the practice)"
        self.fields["assignee"].queryset = _assignees()
        self.fields["summary"].help_text = "What went wrong, in a line. No patient names."


class PracticePickForm(forms.Form):
    practice = forms.ModelChoiceField(
        queryset=Practice.objects.referring().filter(is_active=True), label="Which practice?"
    )


class IssueSearchForm(forms.Form):
    status = forms.ChoiceField(
        required=False, choices=[("open", "open"), ("all", "all"), *IssueStatus.choices], initial="open"
    )
    category = forms.ChoiceField(required=False, choices=[("", "any category"), *IssueCategory.choices])
    severity = forms.ChoiceField(required=False, choices=[("", "any severity"), *Severity.choices])
    assignee = forms.ChoiceField(required=False, label="Assigned to")
    overdue = forms.BooleanField(required=False, label="Overdue only")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["assignee"].choices = [
            ("", "anyone"),
            ("me", "me"),
            ("none", "nobody"),
            *[(str(u.pk), str(u)) for u in _assignees()],
        ]


class StatusForm(forms.Form):
    status = forms.ChoiceField(
        choices=[
            (IssueStatus.IN_PROGRESS, "In progress"),
            (IssueStatus.RESOLVED, "Resolved"),
            (IssueStatus.OPEN, "Open"),
        ]
    )
    resolution = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="needed to resolve: the office will be told",
    )
    note = forms.CharField(required=False, max_length=1000)


class AssignForm(forms.Form):
    assignee = forms.ModelChoiceField(queryset=User.objects.none(), required=False, empty_label="nobody")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = _assignees()


class InformedForm(forms.Form):
    how = forms.ChoiceField(choices=InformedBy.choices, label="Told by")
    contact = forms.ModelChoiceField(queryset=Contact.objects.none(), required=False, label="Who was told")
    note = forms.CharField(required=False, max_length=1000)

    def __init__(self, *args: Any, practice: Practice, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["contact"].queryset = Contact.objects.filter(practice=practice, is_active=True)


class NoteForm(forms.Form):
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=4000, help_text=NOTICE)


class SendSurveyForm(forms.Form):
    contacts = forms.ModelMultipleChoiceField(
        queryset=Contact.objects.none(), widget=forms.CheckboxSelectMultiple, label="Send to"
    )

    def __init__(self, *args: Any, contacts: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["contacts"].queryset = contacts
        self.fields["contacts"].label_from_instance = lambda c: f"{c} · {c.get_role_display()} · {c.email}"


class SurveyAnswerForm(forms.Form):
    nps = forms.TypedChoiceField(
        choices=[(i, str(i)) for i in range(11)],
        coerce=int,
        widget=forms.RadioSelect,
        label="How likely are you to recommend us to a colleague? (0 = not at all, 10 = extremely)",
    )
    comment = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=4000,
        label="Anything we should do better?",
        help_text="Please no patient names or details.",
    )

    def __init__(self, *args: Any, survey: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.question_keys = []
        for q in survey.questions:
            name = f"q_{q['key']}"
            self.question_keys.append((name, q["key"]))
            self.fields[name] = forms.TypedChoiceField(
                choices=[(i, str(i)) for i in range(1, 6)],
                coerce=int,
                widget=forms.RadioSelect,
                label=q["text"],
                required=False,
                help_text="1 = poor, 5 = excellent",
            )
        self.order_fields(["nps", *[n for n, _ in self.question_keys], "comment"])

    def answers(self) -> dict[str, int]:
        return {
            key: self.cleaned_data[name]
            for name, key in self.question_keys
            if self.cleaned_data.get(name) not in (None, "")
        }
