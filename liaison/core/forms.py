from __future__ import annotations

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.forms.renderers import TemplatesSetting


class LiaisonFormRenderer(TemplatesSetting):
    """Forms render with labels, help and errors the way Pico CSS styles them (and screen readers read them)."""

    form_template_name = "core/forms/form.html"
    field_template_name = "core/forms/field.html"


def apply_errors(form: forms.BaseForm, exc: ValidationError, rename: dict[str, str] | None = None) -> None:
    """Show a service's ValidationError on the form: on the field it names, else above the form."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for name, errors in exc.error_dict.items():
        field = (rename or {}).get(name, name)
        if field in form.fields:
            form.add_error(field, errors)
        else:
            label = "" if name == NON_FIELD_ERRORS else name.replace("_", " ").capitalize() + ": "
            form.add_error(None, [f"{label}{m}" for e in errors for m in e.messages])
