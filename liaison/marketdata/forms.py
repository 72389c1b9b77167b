from __future__ import annotations

from django import forms

from liaison.directory.models import US_STATES, Location
from liaison.directory.selectors import our_sites
from liaison.marketdata.models import ImportKind
from liaison.marketdata.scoring import market_radius
from liaison.marketdata.selectors import MAX_RADIUS_MILES, OpportunityFilters
from liaison.marketdata.shared_patients import WINDOWS


class OpportunityFilterForm(forms.Form):
    q = forms.CharField(required=False, label="Name or NPI", max_length=100)
    specialty = forms.CharField(required=False, max_length=100, help_text="name or NUCC code")
    max_miles = forms.FloatField(
        required=False,
        min_value=0.1,
        max_value=MAX_RADIUS_MILES,
        label="Within (miles)",
        widget=forms.NumberInput(attrs={"step": "any", "inputmode": "decimal"}),
    )
    min_shared = forms.IntegerField(
        required=False, min_value=0, max_value=1_000_000, label="At least (shared patients)"
    )
    site = forms.ModelChoiceField(
        queryset=Location.objects.none(), required=False, empty_label="any of our sites", label="Nearest site"
    )
    unflagged = forms.BooleanField(required=False, label="Not yet in the pipeline")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = our_sites()

    def filters(self) -> OpportunityFilters:
        d = self.cleaned_data if self.is_bound and self.is_valid() else {}
        return OpportunityFilters(
            q=d.get("q", ""),
            specialty=d.get("specialty", ""),
            max_miles=d.get("max_miles"),
            min_shared=d.get("min_shared"),
            site=d.get("site"),
            unflagged=bool(d.get("unflagged")),
        )


class ImportForm(forms.Form):
    kind = forms.ChoiceField(
        choices=[
            (ImportKind.NPPES, "NPPES (full file, weekly update or deactivation report)"),
            (ImportKind.SHARED_PATIENTS, "Shared patients (CMS or CareSet)"),
            (ImportKind.UTILIZATION, "Medicare utilisation (by provider and service, or by provider)"),
        ]
    )
    file_name = forms.ChoiceField(label="File in the import folder", required=False)
    upload = forms.FileField(
        required=False, help_text="or upload a file (small files; put big ones in the folder)"
    )
    states = forms.CharField(required=False, max_length=200, help_text="NPPES: e.g. OH,KY")
    near_sites = forms.ModelMultipleChoiceField(
        queryset=Location.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="NPPES: near our sites",
    )
    radius_miles = forms.FloatField(
        required=False,
        min_value=1,
        max_value=500,
        label="NPPES: within (miles)",
        help_text="of the sites ticked, or of all our sites",
    )
    taxonomy = forms.CharField(
        required=False, max_length=300, help_text="NPPES: codes, prefixes (207X) or names"
    )
    entity = forms.ChoiceField(
        required=False,
        choices=[
            ("", "individuals and organisations"),
            ("individual", "individuals"),
            ("organisation", "organisations"),
        ],
        label="NPPES: entities",
    )
    window = forms.TypedChoiceField(
        required=False,
        coerce=int,
        empty_value=None,
        choices=[("", "from the file name")] + [(w, f"{w} days") for w in WINDOWS],
        label="Shared patients: day window",
    )
    year = forms.IntegerField(
        required=False, min_value=2000, max_value=2100, help_text="if not in the file name"
    )
    everything = forms.BooleanField(
        required=False,
        label="NPPES: no filter, every provider in the file (the full file lists every provider in the US)",
    )
    force = forms.BooleanField(required=False, label="Read again even if this file was imported")

    def __init__(self, *args: object, files_available: list[str] = (), **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["file_name"].choices = [("", "choose a file")] + [(n, n) for n in files_available]
        self.fields["near_sites"].queryset = our_sites()
        self.fields["radius_miles"].initial = market_radius()

    def clean_states(self) -> list[str]:
        states = [s.strip().upper() for s in self.cleaned_data["states"].split(",") if s.strip()]
        bad = [s for s in states if s not in US_STATES]
        if bad:
            raise forms.ValidationError(f"Unknown state code(s): {', '.join(bad)}.")
        return states

    def clean(self) -> dict:
        data = super().clean()
        if not data.get("file_name") and not data.get("upload"):
            self.add_error("file_name", "Choose a file from the folder or upload one.")
        if data.get("near_sites") and not data.get("radius_miles"):
            self.add_error("radius_miles", "How many miles from these sites?")
        if data.get("radius_miles") and not data.get("near_sites"):
            data["near_sites"] = list(our_sites())
        unfiltered = not (data.get("states") or data.get("radius_miles") or data.get("taxonomy"))
        if data.get("kind") == ImportKind.NPPES and unfiltered and not data.get("everything"):
            # Nine million providers in the directory is rarely what was meant, and hard to undo.
            self.add_error(
                "radius_miles",
                "Say which providers to keep (miles from our sites, states or taxonomy), or tick "
                '"no filter" to import every provider in the file.',
            )
        return data

    def options(self) -> dict:
        d = self.cleaned_data
        return {
            "states": d.get("states") or [],
            "near_sites": [s.pk for s in d.get("near_sites") or []],
            "radius_miles": d.get("radius_miles"),
            "taxonomy": [t.strip() for t in (d.get("taxonomy") or "").split(",") if t.strip()],
            "entity": d.get("entity") or "",
            "window": d.get("window"),
            "year": d.get("year"),
            "force": bool(d.get("force")),
        }
