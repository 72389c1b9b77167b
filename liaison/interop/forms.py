from __future__ import annotations

from typing import Any

from django import forms

from liaison.interop.models import ColumnMapping
from liaison.interop.tabular import DATE_FORMATS, TARGETS


class UploadForm(forms.Form):
    file = forms.FileField(
        label="Practice-management export",
        help_text="CSV or Excel (.xlsx), first row = column names, up to 50 MB. The file is kept "
        "encrypted and deleted once imported.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,.xlsx"}),
    )


class MappingForm(forms.Form):
    """Which column holds what: one select per field we can import, listing the file's columns."""

    name = forms.CharField(
        label="Save this mapping as",
        max_length=100,
        help_text="e.g. 'athenahealth referral report': proposed again for files with the same columns.",
    )
    dob_format = forms.ChoiceField(label="Date of birth format", choices=DATE_FORMATS)
    date_format = forms.ChoiceField(
        label="Format of the other dates", choices=DATE_FORMATS, help_text="received and appointment dates"
    )

    def __init__(self, *args: Any, headers: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [("", "— not in the file —"), *[(h, h) for h in headers]]
        self.groups: dict[str, list[str]] = {}
        for target in TARGETS:
            self.fields[f"col_{target.key}"] = forms.ChoiceField(
                label=target.label, choices=choices, required=False, help_text=target.help
            )
            self.groups.setdefault(target.group, []).append(f"col_{target.key}")

    def grouped(self) -> list[tuple[str, list[Any]]]:
        return [(group, [self[name] for name in names]) for group, names in self.groups.items()]

    def columns(self) -> dict[str, str]:
        return {
            name.removeprefix("col_"): value
            for name, value in self.cleaned_data.items()
            if name.startswith("col_") and value
        }

    @staticmethod
    def initial_for(mapping: ColumnMapping | None, columns: dict[str, str]) -> dict[str, Any]:
        initial: dict[str, Any] = {f"col_{k}": v for k, v in columns.items()}
        if mapping is not None:
            initial.update(name=mapping.name, dob_format=mapping.dob_format, date_format=mapping.date_format)
        return initial


class CommitForm(forms.Form):
    skip_bad_rows = forms.BooleanField(required=False)
