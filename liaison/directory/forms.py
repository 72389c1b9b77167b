from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from liaison.core.geo import normalize_zip
from liaison.directory.models import Contact, Location, Practice, Provider, Weekday
from liaison.directory.selectors import MAX_RADIUS_MILES, DirectoryFilters, our_sites
from liaison.directory.services import resolve_taxonomies


class SearchForm(forms.Form):
    """Filters shared by the provider and practice lists."""

    q = forms.CharField(required=False, label="Name or NPI", max_length=100)
    specialty = forms.CharField(required=False, max_length=100, help_text="name or NUCC code")
    city = forms.CharField(required=False, max_length=100)
    zip_code = forms.CharField(required=False, label="ZIP", max_length=10)
    near_site = forms.ModelChoiceField(
        queryset=Location.objects.none(), required=False, empty_label="any of our sites", label="Near"
    )
    radius_miles = forms.FloatField(
        required=False,
        min_value=0.1,
        max_value=MAX_RADIUS_MILES,
        label="Within (miles)",
        widget=forms.NumberInput(attrs={"step": "any", "inputmode": "decimal"}),
    )
    ours = forms.ChoiceField(
        required=False,
        label="Whose",
        choices=[("", "everyone"), ("false", "referring"), ("true", "ours")],
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["near_site"].queryset = our_sites()

    def clean_zip_code(self) -> str:
        value = self.cleaned_data["zip_code"].strip()
        if value and normalize_zip(value) is None:
            raise forms.ValidationError("Enter a 5-digit ZIP code.")
        return value

    def clean(self) -> dict:
        data = super().clean()
        if data.get("near_site") and data.get("radius_miles") is None:
            self.add_error("radius_miles", "How many miles from this site?")
        return data

    def filters(self) -> DirectoryFilters:
        d = self.cleaned_data
        return DirectoryFilters(
            q=d.get("q", ""),
            specialty=d.get("specialty", ""),
            city=d.get("city", ""),
            zip_code=d.get("zip_code", ""),
            near_site=d.get("near_site"),
            radius_miles=d.get("radius_miles"),
            ours={"true": True, "false": False}.get(d.get("ours") or ""),
        )


class PracticeForm(forms.ModelForm):
    website = forms.URLField(required=False, assume_scheme="https", max_length=200)

    class Meta:
        model = Practice
        fields = ["name", "organization_npi", "is_ours", "website", "notes", "is_active"]
        widgets = {"notes": forms.Textarea(attrs={"rows": 3})}


class LocationForm(forms.ModelForm):
    lunch_best_days = forms.MultipleChoiceField(
        choices=Weekday.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Best days for lunch",
    )

    class Meta:
        model = Location
        fields = [
            "name",
            "address_line1",
            "address_line2",
            "city",
            "state",
            "zip_code",
            "phone",
            "fax",
            "office_hours",
            "lunch_best_days",
            "lunch_head_count",
            "dietary_notes",
            "is_active",
        ]
        widgets = {"zip_code": forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "postal-code"})}
        labels = {"lunch_head_count": "Head count for lunch"}


class ProviderForm(forms.ModelForm):
    primary_taxonomy_code = forms.CharField(
        required=False,
        label="Primary specialty (NUCC code)",
        max_length=10,
        widget=forms.TextInput(attrs={"list": "taxonomy-options", "autocomplete": "off"}),
        help_text="Start typing a specialty and pick it, or enter a code such as 207Q00000X.",
    )
    secondary_taxonomy_codes = forms.CharField(
        required=False, label="Other specialties (codes, comma-separated)", max_length=500
    )
    locations = forms.ModelMultipleChoiceField(
        queryset=Location.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Practises at",
    )

    class Meta:
        model = Provider
        fields = [
            "npi",
            "name_prefix",
            "first_name",
            "middle_name",
            "last_name",
            "name_suffix",
            "credential",
            "gender",
            "is_ours",
            "email",
            "email_consent",
            "clinical_interests",
            "notes",
            "status",
        ]
        widgets = {
            "npi": forms.TextInput(attrs={"inputmode": "numeric"}),
            "clinical_interests": forms.Textarea(attrs={"rows": 2}),
            "notes": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args: object, location_choices: object = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["locations"].queryset = (
            location_choices if location_choices is not None else Location.objects.none()
        )
        if self.instance.pk:
            self.initial.setdefault("primary_taxonomy_code", self.instance.primary_taxonomy_id or "")
            self.initial.setdefault(
                "secondary_taxonomy_codes",
                ", ".join(t.code for t in self.instance.secondary_taxonomies.all()),
            )
            self.initial.setdefault("locations", list(self.instance.locations.all()))

    def secondary_codes(self) -> list[str]:
        return _split_codes(self.cleaned_data.get("secondary_taxonomy_codes") or "")

    # The service checks the codes again; checking here too shows every error in one go.
    def clean_primary_taxonomy_code(self) -> str:
        code = self.cleaned_data["primary_taxonomy_code"].strip().upper()
        if code:
            _taxonomies_or_form_error([code])
        return code

    def clean_secondary_taxonomy_codes(self) -> str:
        value = self.cleaned_data["secondary_taxonomy_codes"]
        _taxonomies_or_form_error(_split_codes(value))
        return value


def _split_codes(value: str) -> list[str]:
    return [c.strip() for c in value.replace(";", ",").split(",") if c.strip()]


def _taxonomies_or_form_error(codes: list[str]) -> None:
    try:
        resolve_taxonomies(codes, "codes")
    except ValidationError as exc:
        raise forms.ValidationError(exc.message_dict["codes"]) from exc


class ContactForm(forms.ModelForm):
    class Meta:
        model = Contact
        fields = [
            "first_name",
            "last_name",
            "title",
            "role",
            "influence",
            "location",
            "email",
            "phone",
            "birthday",
            "interests",
            "personal_notes",
            "email_consent",
            "is_active",
        ]
        widgets = {
            "birthday": forms.DateInput(attrs={"type": "date"}),
            "personal_notes": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args: object, practice: Practice, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.instance.practice = practice
        self.fields["location"].queryset = practice.locations.all()
        self.fields["location"].empty_label = "(all offices)"


class ContactSearchForm(forms.Form):
    q = forms.CharField(required=False, label="Name or email", max_length=100)
    role = forms.ChoiceField(
        required=False, choices=[("", "any role"), *Contact._meta.get_field("role").choices]
    )
