"""The directory: referring practices, their locations, providers and office staff, and our own
organisation (our sites and physicians), which lives in the same tables marked `is_ours`."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from liaison.core.geo import normalize_zip, zip_info
from liaison.core.models import ConstraintErrorsOnFields, TimeStampedModel
from liaison.directory.validators import normalize_phone, validate_npi, validate_taxonomy_code_format

US_STATES = [
    "AL",
    "AK",
    "AZ",
    "AR",
    "CA",
    "CO",
    "CT",
    "DE",
    "DC",
    "FL",
    "GA",
    "HI",
    "ID",
    "IL",
    "IN",
    "IA",
    "KS",
    "KY",
    "LA",
    "ME",
    "MD",
    "MA",
    "MI",
    "MN",
    "MS",
    "MO",
    "MT",
    "NE",
    "NV",
    "NH",
    "NJ",
    "NM",
    "NY",
    "NC",
    "ND",
    "OH",
    "OK",
    "OR",
    "PA",
    "RI",
    "SC",
    "SD",
    "TN",
    "TX",
    "UT",
    "VT",
    "VA",
    "WA",
    "WV",
    "WI",
    "WY",
    "PR",
    "VI",
    "GU",
    "AS",
    "MP",
]


class Source(models.TextChoices):
    MANUAL = "manual", "Entered by hand"
    NPPES = "nppes", "NPPES"
    DEMO = "demo", "Demo data"
    IMPORT = "import", "File import"


class Taxonomy(models.Model):
    """A NUCC Health Care Provider Taxonomy code (a specialty)."""

    code = models.CharField(primary_key=True, max_length=10, validators=[validate_taxonomy_code_format])
    grouping = models.CharField(max_length=120)
    classification = models.CharField(max_length=120)
    specialization = models.CharField(max_length=120, blank=True)
    display_name = models.CharField(max_length=200, blank=True)
    section = models.CharField(max_length=20, blank=True)
    definition = models.TextField(blank=True)

    class Meta:
        ordering = ["classification", "specialization"]
        verbose_name_plural = "taxonomies"

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        if self.display_name:
            return self.display_name
        return f"{self.classification}: {self.specialization}" if self.specialization else self.classification


class PracticeQuerySet(models.QuerySet["Practice"]):
    def referring(self) -> PracticeQuerySet:
        return self.filter(is_ours=False)

    def ours(self) -> PracticeQuerySet:
        return self.filter(is_ours=True)


class Practice(ConstraintErrorsOnFields, TimeStampedModel):
    """An organisation: a referring practice, or (is_ours) our own."""

    name = models.CharField(max_length=200)
    organization_npi = models.CharField(
        "organisation NPI",
        max_length=10,
        blank=True,
        validators=[validate_npi],
        help_text="Type 2 NPI of the organisation, if it has one.",
    )
    is_ours = models.BooleanField("our organisation", default=False)
    website = models.URLField(blank=True)
    notes = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.MANUAL)

    objects = PracticeQuerySet.as_manager()
    constraint_fields = {"duplicate_npi": "organization_npi"}

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization_npi"],
                condition=~Q(organization_npi=""),
                name="practice_npi_unique",
                violation_error_code="duplicate_npi",
                violation_error_message="Another practice in the directory already has this NPI.",
            )
        ]

    def __str__(self) -> str:
        return self.name


class Weekday(models.TextChoices):
    MON = "mon", "Monday"
    TUE = "tue", "Tuesday"
    WED = "wed", "Wednesday"
    THU = "thu", "Thursday"
    FRI = "fri", "Friday"


class LocationQuerySet(models.QuerySet["Location"]):
    def sites(self) -> LocationQuerySet:
        """Our own sites."""
        return self.filter(practice__is_ours=True, is_active=True)

    def referring(self) -> LocationQuerySet:
        return self.filter(practice__is_ours=False)


class Location(TimeStampedModel):
    """An office of a practice. For our own practice, a location is one of our sites."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="locations")
    name = models.CharField(
        max_length=120, blank=True, help_text="e.g. 'North office'; blank for the main office"
    )
    address_line1 = models.CharField("address", max_length=200)
    address_line2 = models.CharField("address (line 2)", max_length=200, blank=True)
    city = models.CharField(max_length=100)
    state = models.CharField(max_length=2, choices=[(s, s) for s in US_STATES])
    zip_code = models.CharField("ZIP code", max_length=10)
    county = models.CharField(max_length=100, blank=True, editable=False)
    latitude = models.FloatField(null=True, blank=True, editable=False)
    longitude = models.FloatField(null=True, blank=True, editable=False)
    phone = models.CharField(max_length=30, blank=True)
    fax = models.CharField(max_length=30, blank=True)
    office_hours = models.CharField(max_length=200, blank=True, help_text="e.g. Mon-Fri 8-5, closed 12-1")
    lunch_best_days = models.JSONField(
        default=list, blank=True, help_text="weekdays the office prefers for lunches and in-services"
    )
    lunch_head_count = models.PositiveSmallIntegerField(null=True, blank=True)
    dietary_notes = models.CharField(max_length=300, blank=True)
    is_active = models.BooleanField(default=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.MANUAL)

    objects = LocationQuerySet.as_manager()

    class Meta:
        ordering = ["practice__name", "name", "city"]
        indexes = [
            models.Index(fields=["zip_code"]),
            models.Index(fields=["latitude", "longitude"]),
            models.Index(fields=["city"]),
        ]

    def __str__(self) -> str:
        label = self.name or self.city
        return f"{self.practice.name} – {label}" if label else self.practice.name

    @property
    def is_site(self) -> bool:
        return self.practice.is_ours

    @property
    def short_address(self) -> str:
        return f"{self.address_line1}, {self.city}, {self.state} {self.zip_code}"

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        zip_norm = normalize_zip(self.zip_code)
        if zip_norm is None:
            errors["zip_code"] = [
                f"'{self.zip_code}' is not a ZIP code: enter 5 digits (or ZIP+4, e.g. 43215-1234)."
            ]
        else:
            info = zip_info(zip_norm)
            if info is None:
                errors["zip_code"] = [f"{zip_norm} is not a known US ZIP code."]
            elif self.state and info.state != self.state:
                errors["zip_code"] = [f"ZIP {zip_norm[:5]} is in {info.state}, not {self.state}."]
            else:
                self.zip_code = zip_norm
                self.latitude, self.longitude, self.county = info.latitude, info.longitude, info.county
        for name in ("phone", "fax"):
            try:
                setattr(self, name, normalize_phone(getattr(self, name)))
            except ValidationError as exc:
                errors[name] = exc.messages
        bad_days = [d for d in self.lunch_best_days or [] if d not in Weekday.values]
        if bad_days:
            errors["lunch_best_days"] = [f"Unknown weekday(s): {', '.join(map(str, bad_days))}."]
        if errors:
            raise ValidationError(errors)


class Gender(models.TextChoices):
    FEMALE = "F", "Female"
    MALE = "M", "Male"
    OTHER = "X", "Other"
    UNKNOWN = "", "Not stated"


class ProviderQuerySet(models.QuerySet["Provider"]):
    def ours(self) -> ProviderQuerySet:
        return self.filter(is_ours=True)

    def referring(self) -> ProviderQuerySet:
        return self.filter(is_ours=False)

    def with_specialty(self, codes: list[str]) -> ProviderQuerySet:
        return self.filter(Q(primary_taxonomy__in=codes) | Q(secondary_taxonomies__in=codes)).distinct()


# Taxonomy groupings whose providers are "mid-levels" to a liaison.
MID_LEVEL_GROUPINGS = ("Physician Assistants & Advanced Practice Nursing Providers",)


class Provider(ConstraintErrorsOnFields, TimeStampedModel):
    """A clinician identified by NPI: a referring provider or (is_ours) one of our physicians."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        DEACTIVATED = "deactivated", "NPI deactivated"
        INACTIVE = "inactive", "No longer practising here"

    npi = models.CharField("NPI", max_length=10, blank=True, validators=[validate_npi])
    first_name = models.CharField(max_length=80)
    middle_name = models.CharField(max_length=80, blank=True)
    last_name = models.CharField(max_length=80)
    name_prefix = models.CharField("prefix", max_length=20, blank=True)
    name_suffix = models.CharField("suffix", max_length=20, blank=True)
    credential = models.CharField(max_length=40, blank=True, help_text="e.g. MD, DO, NP, PA-C")
    gender = models.CharField(max_length=1, choices=Gender.choices, blank=True)
    is_ours = models.BooleanField("one of our physicians", default=False)
    primary_taxonomy = models.ForeignKey(
        Taxonomy,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="primary_providers",
        verbose_name="primary specialty",
    )
    secondary_taxonomies = models.ManyToManyField(
        Taxonomy, blank=True, related_name="secondary_providers", verbose_name="other specialties"
    )
    locations = models.ManyToManyField(Location, blank=True, related_name="providers")
    clinical_interests = models.TextField(blank=True)
    notes = models.TextField(blank=True)
    # Like office staff, a referring physician can receive our emails (campaigns) with consent.
    email = models.EmailField(blank=True)
    email_consent = models.BooleanField(default=False, help_text="agreed to receive our emails")
    email_consent_at = models.DateTimeField(null=True, blank=True, editable=False)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ACTIVE)
    deactivated_on = models.DateField(null=True, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.MANUAL)

    objects = ProviderQuerySet.as_manager()
    constraint_fields = {"duplicate_npi": "npi"}

    class Meta:
        ordering = ["last_name", "first_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["npi"],
                condition=~Q(npi=""),
                name="provider_npi_unique",
                violation_error_code="duplicate_npi",
                violation_error_message="Another provider in the directory already has this NPI.",
            ),
        ]
        indexes = [models.Index(fields=["last_name", "first_name"])]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        name = f"{self.first_name} {self.last_name}".strip()
        return f"{name}, {self.credential}" if self.credential else name

    @property
    def is_mid_level(self) -> bool:
        return bool(self.primary_taxonomy and self.primary_taxonomy.grouping in MID_LEVEL_GROUPINGS)


class ContactRole(models.TextChoices):
    OFFICE_MANAGER = "office_manager", "Office manager"
    REFERRAL_COORDINATOR = "referral_coordinator", "Referral coordinator"
    NURSE = "nurse", "Nurse"
    MEDICAL_ASSISTANT = "medical_assistant", "Medical assistant"
    RECEPTIONIST = "receptionist", "Receptionist"
    BILLING = "billing", "Billing"
    OTHER = "other", "Other"


class Influence(models.TextChoices):
    DECIDES = "decides", "Decides where referrals go"
    HIGH = "high", "Strong influence"
    SOME = "some", "Some influence"
    NONE = "none", "No influence"
    UNKNOWN = "", "Unknown"


class Contact(TimeStampedModel):
    """A person on the staff of an office (not a provider): often the one who picks the specialist."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="contacts")
    location = models.ForeignKey(
        Location, null=True, blank=True, on_delete=models.SET_NULL, related_name="contacts"
    )
    first_name = models.CharField(max_length=80)
    last_name = models.CharField(max_length=80, blank=True)
    title = models.CharField("job title", max_length=100, blank=True)
    role = models.CharField(max_length=24, choices=ContactRole.choices, default=ContactRole.OTHER)
    influence = models.CharField(
        "influence on referrals", max_length=8, choices=Influence.choices, blank=True
    )
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=30, blank=True)
    birthday = models.DateField(null=True, blank=True, help_text="the year is ignored")
    interests = models.CharField(max_length=300, blank=True)
    personal_notes = models.TextField(blank=True)
    email_consent = models.BooleanField(default=False, help_text="agreed to receive our emails")
    email_consent_at = models.DateTimeField(null=True, blank=True, editable=False)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["last_name", "first_name"]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        try:
            self.phone = normalize_phone(self.phone)
        except ValidationError as exc:
            errors["phone"] = exc.messages
        if self.location_id and self.practice_id and self.location.practice_id != self.practice_id:
            errors["location"] = ["This location belongs to another practice."]
        if errors:
            raise ValidationError(errors)
