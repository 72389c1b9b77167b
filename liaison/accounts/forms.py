from __future__ import annotations

from django import forms
from django.contrib.auth.forms import AuthenticationForm

from liaison.accounts.models import Role, User
from liaison.directory.models import Provider


class EmailLoginForm(AuthenticationForm):
    username = forms.EmailField(
        label="Email", widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"})
    )

    error_messages = {
        "invalid_login": "That email and password do not match an active account.",
        "inactive": "This account is deactivated.",
    }


class UserForm(forms.ModelForm):
    password = forms.CharField(
        required=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 12 characters. Leave blank to keep the current password (or, for a new user, to set it later).",
    )

    class Meta:
        model = User
        fields = ["email", "full_name", "role", "provider", "is_active"]
        labels = {"provider": "Linked physician (physician users)"}

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["provider"].queryset = Provider.objects.ours()
        self.fields["role"].choices = Role.choices


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses it, e.g. 'EHR integration'.")
    expires_in_days = forms.IntegerField(
        required=False, min_value=1, max_value=3650, help_text="Blank: never expires."
    )


class MfaCodeForm(forms.Form):
    token = forms.CharField(
        label="6-digit code from your authenticator app",
        max_length=8,
        widget=forms.TextInput(
            attrs={"inputmode": "numeric", "autocomplete": "one-time-code", "autofocus": True}
        ),
    )
