from __future__ import annotations

import re
from typing import Any

from django import forms
from django.utils import timezone

from liaison.accounts.models import PHI_ROLES, User
from liaison.directory.models import Contact, Location, Provider
from liaison.referrals.models import (
    Channel,
    ContactOutcome,
    DeclineReason,
    NotifyBy,
    ServiceLine,
    SlaKind,
    Status,
    Urgency,
)
from liaison.referrals.selectors import QUEUE_VIEWS, SORTS
from liaison.referrals.services import INCLUDED_WITH_NOTE, ReferrerInfo

NPI_IN_TEXT = re.compile(r"\b([12][0-9]{9})\b")
DATETIME_WIDGET = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


def _our_choices(form: forms.Form) -> None:
    if "site" in form.fields:
        form.fields["site"].queryset = Location.objects.sites().select_related("practice")
    if "referred_to_physician" in form.fields:
        form.fields["referred_to_physician"].queryset = Provider.objects.ours()
    if "service_line" in form.fields:
        form.fields["service_line"].queryset = ServiceLine.objects.filter(is_active=True)
    if "assigned_to" in form.fields:
        form.fields["assigned_to"].queryset = User.objects.filter(is_active=True, role__in=PHI_ROLES).exclude(
            role="physician"
        )


class IntakeForm(forms.Form):
    """A new referral in under a minute: patient, referrer, where to, why."""

    patient_first_name = forms.CharField(label="Patient first name", max_length=100)
    patient_last_name = forms.CharField(label="Patient last name", max_length=100)
    patient_dob = forms.DateField(label="Date of birth", widget=forms.DateInput(attrs={"type": "date"}))
    patient_phone = forms.CharField(label="Patient phone", max_length=30, required=False)
    patient_mrn = forms.CharField(label="MRN", max_length=50, required=False)
    payer = forms.CharField(max_length=100, required=False, help_text="e.g. Medicare, Aetna")
    member_id = forms.CharField(label="Member id", max_length=50, required=False)
    referrer = forms.CharField(
        label="Referring provider",
        max_length=200,
        help_text="Type a name or NPI and pick from the list; an unknown referrer is kept and flagged for matching.",
        widget=forms.TextInput(attrs={"list": "referrer-options", "autocomplete": "off"}),
    )
    referrer_phone = forms.CharField(label="Referrer's phone", max_length=30, required=False)
    referrer_fax = forms.CharField(label="Referrer's fax", max_length=30, required=False)
    site = forms.ModelChoiceField(queryset=Location.objects.none(), required=False, label="Our site")
    referred_to_physician = forms.ModelChoiceField(
        queryset=Provider.objects.none(), required=False, label="Our physician"
    )
    service_line = forms.ModelChoiceField(queryset=ServiceLine.objects.none(), required=False)
    urgency = forms.ChoiceField(choices=Urgency.choices, initial=Urgency.ROUTINE)
    channel = forms.ChoiceField(choices=Channel.choices, initial=Channel.FAX, label="Received by")
    reason = forms.CharField(
        label="Reason for referral", widget=forms.Textarea(attrs={"rows": 2}), required=False
    )
    icd10_codes = forms.CharField(
        label="ICD-10 codes", max_length=200, required=False, help_text="comma-separated, e.g. M17.11"
    )
    assigned_to = forms.ModelChoiceField(queryset=User.objects.none(), required=False, label="Coordinator")
    document = forms.FileField(required=False, help_text="the faxed referral (PDF or image)")
    confirm_not_duplicate = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _our_choices(self)

    def clean_icd10_codes(self) -> str:
        codes = [
            c.strip().upper()
            for c in self.cleaned_data["icd10_codes"].replace(";", ",").split(",")
            if c.strip()
        ]
        bad = [c for c in codes if not re.fullmatch(r"[A-TV-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?", c)]
        if bad:
            raise forms.ValidationError(f"Not ICD-10 codes: {', '.join(bad)} (e.g. M17.11).")
        return ", ".join(codes)

    def referrer_info(self) -> ReferrerInfo:
        text = self.cleaned_data["referrer"].strip()
        npi = NPI_IN_TEXT.search(text)
        name = NPI_IN_TEXT.sub("", text.split("—")[0]).replace("(NPI", "").replace(")", "").strip(" ,")
        name = re.sub(r",\s*[A-Z][A-Za-z.\-]{1,6}$", "", name)  # drop a trailing credential
        parts = name.split()
        return ReferrerInfo(
            npi=npi.group(1) if npi else "",
            first_name=parts[0] if len(parts) > 1 else "",
            last_name=parts[-1] if parts else "",
            phone=self.cleaned_data.get("referrer_phone", ""),
            fax=self.cleaned_data.get("referrer_fax", ""),
        )

    def referral_fields(self) -> dict[str, Any]:
        names = [
            "patient_first_name",
            "patient_last_name",
            "patient_dob",
            "patient_phone",
            "patient_mrn",
            "payer",
            "member_id",
            "site",
            "referred_to_physician",
            "service_line",
            "urgency",
            "channel",
            "reason",
            "icd10_codes",
            "assigned_to",
        ]
        return {n: self.cleaned_data[n] for n in names}


class StatusForm(forms.Form):
    to_status = forms.ChoiceField(choices=Status.choices, widget=forms.HiddenInput)
    appointment_at = forms.DateTimeField(required=False, label="Appointment", widget=DATETIME_WIDGET)
    decline_reason = forms.ChoiceField(
        choices=[("", "—"), *DeclineReason.choices], required=False, label="Why declined"
    )
    channel = forms.ChoiceField(
        choices=[
            ("", "—"),
            ("fax", "Fax"),
            ("ehr", "EHR / Direct message"),
            ("portal", "Portal"),
            ("mail", "Mail"),
        ],
        required=False,
        label="Note sent by",
    )
    included = forms.MultipleChoiceField(
        choices=[(i, i.replace("_", " ").capitalize()) for i in INCLUDED_WITH_NOTE],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Sent with the note",
    )
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def clean_appointment_at(self) -> Any:
        value = self.cleaned_data["appointment_at"]
        if value and value < timezone.now() - timezone.timedelta(days=365):
            raise forms.ValidationError("That appointment is more than a year ago.")
        return value


class ContactForm(forms.Form):
    outcome = forms.ChoiceField(choices=ContactOutcome.choices)
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class NoteForm(forms.Form):
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))


class DocumentForm(forms.Form):
    document = forms.FileField()


class QueueForm(forms.Form):
    view = forms.ChoiceField(choices=list(QUEUE_VIEWS.items()), required=False)
    site = forms.ModelChoiceField(queryset=Location.objects.none(), required=False, empty_label="all sites")
    service_line = forms.ModelChoiceField(
        queryset=ServiceLine.objects.none(), required=False, empty_label="all service lines"
    )
    urgency = forms.ChoiceField(choices=[("", "any urgency"), *Urgency.choices], required=False)
    patient = forms.CharField(required=False, label="Patient last name", max_length=100)
    sort = forms.ChoiceField(choices=list(SORTS.items()), required=False)
    referrer = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1, widget=forms.HiddenInput)
    step = forms.ChoiceField(
        choices=[("", "any step"), *SlaKind.choices],
        required=False,
        label="Overdue step",
        widget=forms.HiddenInput,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _our_choices(self)


class EditForm(forms.Form):
    patient_first_name = forms.CharField(max_length=100)
    patient_last_name = forms.CharField(max_length=100)
    patient_dob = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    patient_phone = forms.CharField(max_length=30, required=False)
    patient_mrn = forms.CharField(label="MRN", max_length=50, required=False)
    payer = forms.CharField(max_length=100, required=False)
    member_id = forms.CharField(max_length=50, required=False)
    site = forms.ModelChoiceField(queryset=Location.objects.none(), required=False, label="Our site")
    referred_to_physician = forms.ModelChoiceField(
        queryset=Provider.objects.none(), required=False, label="Our physician"
    )
    service_line = forms.ModelChoiceField(queryset=ServiceLine.objects.none(), required=False)
    urgency = forms.ChoiceField(choices=Urgency.choices)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    icd10_codes = forms.CharField(label="ICD-10 codes", max_length=200, required=False)
    assigned_to = forms.ModelChoiceField(queryset=User.objects.none(), required=False, label="Coordinator")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _our_choices(self)

    clean_icd10_codes = IntakeForm.clean_icd10_codes


class OfficePreferenceForm(forms.Form):
    notify_by = forms.ChoiceField(choices=NotifyBy.choices, label="How this office hears about its referrals")
    contact = forms.ModelChoiceField(
        queryset=Contact.objects.none(),
        required=False,
        label="Who gets the emails",
        help_text="usually the referral coordinator; emails never carry patient data",
    )
    fhir_endpoint = forms.URLField(required=False, label="FHIR endpoint (base URL)", assume_scheme="https")

    def __init__(self, *args: Any, location: Location, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["contact"].queryset = Contact.objects.filter(
            practice_id=location.practice_id, is_active=True
        )
