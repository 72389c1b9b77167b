from django import forms


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False, label="Who (email)")
    action = forms.ChoiceField(required=False)
    object_type = forms.ChoiceField(required=False, label="Kind of record")
    object_id = forms.CharField(required=False, label="Record id", max_length=64)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    phi_only = forms.BooleanField(required=False, label="Patient data only")

    def __init__(self, *args: object, actions: list[str], object_types: list[str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = [("", "any")] + [(a, a) for a in actions]
        self.fields["object_type"].choices = [("", "any")] + [(t, t) for t in object_types]
