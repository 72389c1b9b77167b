from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.utils import timezone

from liaison.campaigns.merge import MERGE_FIELDS
from liaison.campaigns.models import (
    Audience,
    Campaign,
    CampaignKind,
    Consent,
    EventKind,
    QuizRule,
    RsvpAnswer,
    Segment,
    SuppressionReason,
    Template,
)
from liaison.campaigns.services import MAX_QUESTIONS, QuestionIn
from liaison.directory.models import Location, Provider
from liaison.outreach.models import Stage, Territory, Tier

QUIZ_SLOTS = 5


def _split(value: str) -> list[str]:
    return [c.strip().upper() for c in value.replace(";", ",").split(",") if c.strip()]


class SegmentForm(forms.Form):
    name = forms.CharField(max_length=150)
    description = forms.CharField(max_length=300, required=False)
    audiences = forms.MultipleChoiceField(
        label="Who",
        choices=Audience.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="none ticked: everyone in the offices",
    )
    territories = forms.ModelMultipleChoiceField(
        queryset=Territory.objects.none(), required=False, widget=forms.CheckboxSelectMultiple
    )
    tiers = forms.MultipleChoiceField(choices=[], required=False, widget=forms.CheckboxSelectMultiple)
    stages = forms.MultipleChoiceField(
        label="Pipeline stage", choices=Stage.choices, required=False, widget=forms.CheckboxSelectMultiple
    )
    specialties = forms.CharField(
        required=False,
        max_length=500,
        label="Specialties (NUCC codes, comma-separated)",
        widget=forms.TextInput(attrs={"list": "taxonomy-options", "autocomplete": "off"}),
        help_text="providers with the specialty; staff of a practice that has one",
    )
    touched_within_days = forms.IntegerField(
        label="Touched in the last (days)", required=False, min_value=1, max_value=3660
    )
    untouched_days = forms.IntegerField(
        label="Not touched for (days)",
        required=False,
        min_value=1,
        max_value=3660,
        help_text="offices never touched included",
    )
    consent = forms.ChoiceField(label="Email consent", choices=Consent.choices, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["territories"].queryset = Territory.objects.order_by("name")
        self.fields["tiers"].choices = [(t.code, f"{t} ({t.name})") for t in Tier.objects.order_by("rank")]

    @classmethod
    def initial_for(cls, segment: Segment) -> dict[str, Any]:
        return {
            "name": segment.name,
            "description": segment.description,
            "audiences": segment.audiences,
            "territories": segment.territories,
            "tiers": segment.tiers,
            "stages": segment.stages,
            "specialties": ", ".join(segment.specialties),
            "touched_within_days": segment.touched_within_days,
            "untouched_days": segment.untouched_days,
            "consent": segment.consent,
        }

    def data_for_service(self) -> dict[str, Any]:
        d = self.cleaned_data
        return {
            "name": d["name"],
            "description": d["description"],
            "audiences": d["audiences"],
            "territories": [t.pk for t in d["territories"]],
            "tiers": d["tiers"],
            "stages": d["stages"],
            "specialties": _split(d["specialties"]),
            "touched_within_days": d["touched_within_days"],
            "untouched_days": d["untouched_days"],
            "consent": d["consent"] or "",
        }


class TemplateForm(forms.ModelForm):
    class Meta:
        model = Template
        fields = ["name", "channel", "subject", "body_text", "body_html", "is_active"]
        widgets = {
            "body_text": forms.Textarea(attrs={"rows": 12}),
            "body_html": forms.Textarea(attrs={"rows": 8}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["body_text"].help_text = "Merge fields: " + ", ".join(
            "{{ " + k + " }}" for k in MERGE_FIELDS
        )


class CampaignForm(forms.Form):
    name = forms.CharField(max_length=150)
    kind = forms.ChoiceField(choices=CampaignKind.choices, widget=forms.RadioSelect)
    segment = forms.ModelChoiceField(queryset=Segment.objects.none())
    template = forms.ModelChoiceField(queryset=Template.objects.none())
    featured_physician = forms.ModelChoiceField(
        queryset=Provider.objects.none(),
        required=False,
        label="Our physician",
        help_text="for {{ physician.name }}: a new physician, the speaker, the letter's signatory",
    )

    def __init__(self, *args: Any, campaign: Campaign | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["segment"].queryset = Segment.objects.order_by("name")
        self.fields["template"].queryset = Template.objects.filter(is_active=True).order_by("channel", "name")
        self.fields["template"].label_from_instance = lambda t: (
            f"{t.name} ({t.get_channel_display().lower()})"
        )
        self.fields["featured_physician"].queryset = Provider.objects.ours().order_by("last_name")
        if campaign is not None:
            self.fields["kind"].disabled = True


class QuizForm(forms.Form):
    closes_at = forms.DateTimeField(
        label="Answers accepted until", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    rule = forms.ChoiceField(choices=QuizRule.choices, widget=forms.RadioSelect, initial=QuizRule.FIRST)
    prize = forms.CharField(max_length=200, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for i in range(1, QUIZ_SLOTS + 1):
            self.fields[f"q{i}_text"] = forms.CharField(label=f"Question {i}", max_length=500, required=False)
            self.fields[f"q{i}_choices"] = forms.CharField(
                label="Choices, one per line",
                required=False,
                widget=forms.Textarea(attrs={"rows": 3}),
            )
            self.fields[f"q{i}_correct"] = forms.IntegerField(
                label="Right choice (1 = first)", required=False, min_value=1, max_value=6
            )

    @classmethod
    def initial_for(cls, quiz: Any) -> dict[str, Any]:
        if quiz is None:
            return {"closes_at": (timezone.localtime() + timedelta(days=14)).strftime("%Y-%m-%dT%H:%M")}
        data: dict[str, Any] = {
            "closes_at": timezone.localtime(quiz.closes_at).strftime("%Y-%m-%dT%H:%M"),
            "rule": quiz.rule,
            "prize": quiz.prize,
        }
        for i, q in enumerate(quiz.questions.all(), 1):
            data[f"q{i}_text"] = q.text
            data[f"q{i}_choices"] = "\n".join(q.choices)
            data[f"q{i}_correct"] = q.correct + 1
        return data

    def slots(self) -> list[list[forms.BoundField]]:
        return [
            [self[f"q{i}_text"], self[f"q{i}_choices"], self[f"q{i}_correct"]]
            for i in range(1, QUIZ_SLOTS + 1)
        ]

    def questions(self) -> list[QuestionIn]:
        d = self.cleaned_data
        out = []
        for i in range(1, min(QUIZ_SLOTS, MAX_QUESTIONS) + 1):
            text = (d.get(f"q{i}_text") or "").strip()
            if not text:
                continue
            choices = [c.strip() for c in (d.get(f"q{i}_choices") or "").splitlines() if c.strip()]
            correct = (d.get(f"q{i}_correct") or 0) - 1
            out.append(QuestionIn(text=text, choices=choices, correct=correct))
        return out


class EventForm(forms.Form):
    kind = forms.ChoiceField(choices=EventKind.choices)
    starts_at = forms.DateTimeField(widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    ends_at = forms.DateTimeField(
        required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    site = forms.ModelChoiceField(queryset=Location.objects.none(), required=False, label="At our site")
    venue = forms.CharField(max_length=300, required=False, help_text="room, or the address elsewhere")
    capacity = forms.IntegerField(required=False, min_value=1)
    speakers = forms.ModelMultipleChoiceField(
        queryset=Provider.objects.none(), required=False, widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = Location.objects.sites().select_related("practice")
        self.fields["speakers"].queryset = Provider.objects.ours().order_by("last_name")

    @classmethod
    def initial_for(cls, event: Any) -> dict[str, Any]:
        if event is None:
            return {"kind": EventKind.SEMINAR}
        fmt = "%Y-%m-%dT%H:%M"
        return {
            "kind": event.kind,
            "starts_at": timezone.localtime(event.starts_at).strftime(fmt),
            "ends_at": timezone.localtime(event.ends_at).strftime(fmt) if event.ends_at else None,
            "site": event.site_id,
            "venue": event.venue,
            "capacity": event.capacity,
            "speakers": list(event.speakers.all()),
        }


class QuizAnswerForm(forms.Form):
    """The public form a recipient fills in: one radio group per question."""

    def __init__(self, *args: Any, questions: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.questions = questions
        for q in questions:
            self.fields[f"q{q.pk}"] = forms.TypedChoiceField(
                label=f"{q.position}. {q.text}",
                choices=list(enumerate(q.choices)),
                coerce=int,
                widget=forms.RadioSelect,
                error_messages={"required": "Pick an answer."},
            )

    def choices(self) -> dict[int, int]:
        return {q.pk: self.cleaned_data[f"q{q.pk}"] for q in self.questions}


class RsvpForm(forms.Form):
    answer = forms.ChoiceField(choices=RsvpAnswer.choices, widget=forms.RadioSelect)


class SuppressionForm(forms.Form):
    email = forms.EmailField()
    reason = forms.ChoiceField(
        choices=[
            (SuppressionReason.BOUNCED, SuppressionReason.BOUNCED.label),
            (SuppressionReason.COMPLAINT, SuppressionReason.COMPLAINT.label),
            (SuppressionReason.MANUAL, SuppressionReason.MANUAL.label),
        ]
    )
    detail = forms.CharField(max_length=300, required=False)


class LiftSuppressionForm(forms.Form):
    note = forms.CharField(
        max_length=300, label="Why", help_text="e.g. the person asked in writing to receive our emails again"
    )
