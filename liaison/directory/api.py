"""Directory endpoints: practices, locations, providers, office contacts, taxonomy, our sites."""

from datetime import date, datetime
from typing import Annotated, Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Field, FilterSchema, Query, Router, Schema, Status
from ninja.pagination import PageNumberPagination, paginate

from liaison.api import require
from liaison.directory import selectors, services
from liaison.directory.models import Contact, Location, Practice, Provider

router = Router(tags=["directory"])

Id = Annotated[int, Field(ge=1, le=2**63 - 1)]


class TaxonomyOut(Schema):
    code: str
    name: str
    grouping: str
    classification: str
    specialization: str


class LocationOut(Schema):
    id: int
    practice_id: int
    name: str
    address_line1: str
    address_line2: str
    city: str
    state: str
    zip_code: str
    county: str
    latitude: float | None
    longitude: float | None
    phone: str
    fax: str
    office_hours: str
    lunch_best_days: list[str]
    lunch_head_count: int | None
    dietary_notes: str
    is_active: bool
    is_site: bool = Field(description="one of our own sites")

    @staticmethod
    def resolve_is_site(obj: Location) -> bool:
        return obj.practice.is_ours


class PracticeOut(Schema):
    id: int
    name: str
    organization_npi: str
    is_ours: bool
    website: str
    notes: str
    is_active: bool
    locations: list[LocationOut]
    distance_miles: float | None = Field(None, description="to the nearest of our sites, with radius_miles")

    @staticmethod
    def resolve_locations(obj: Practice) -> list[Location]:
        return list(obj.locations.all())


class ProviderOut(Schema):
    id: int
    npi: str
    first_name: str
    middle_name: str
    last_name: str
    name_prefix: str
    name_suffix: str
    credential: str
    gender: str
    is_ours: bool = Field(description="one of our own physicians")
    primary_taxonomy: TaxonomyOut | None
    secondary_taxonomies: list[TaxonomyOut]
    location_ids: list[int]
    clinical_interests: str
    notes: str
    email: str
    email_consent: bool
    email_consent_at: datetime | None
    status: str
    distance_miles: float | None = Field(None, description="to the nearest of our sites, with radius_miles")

    @staticmethod
    def resolve_secondary_taxonomies(obj: Provider) -> list[Any]:
        return list(obj.secondary_taxonomies.all())

    @staticmethod
    def resolve_location_ids(obj: Provider) -> list[int]:
        return [loc.pk for loc in obj.locations.all()]


class ContactOut(Schema):
    id: int
    practice_id: int
    location_id: int | None
    first_name: str
    last_name: str
    title: str
    role: str
    influence: str
    email: str
    phone: str
    birthday: date | None
    interests: str
    personal_notes: str
    email_consent: bool
    email_consent_at: datetime | None
    is_active: bool


class PracticeIn(Schema):
    name: str
    organization_npi: str = ""
    is_ours: bool = False
    website: str = ""
    notes: str = ""
    is_active: bool = True


class LocationIn(Schema):
    practice_id: Id
    name: str = ""
    address_line1: str
    address_line2: str = ""
    city: str
    state: str
    zip_code: str
    phone: str = ""
    fax: str = ""
    office_hours: str = ""
    lunch_best_days: list[str] = []
    lunch_head_count: int | None = Field(None, ge=0, le=10000)
    dietary_notes: str = ""
    is_active: bool = True


class ProviderIn(Schema):
    npi: str = ""
    first_name: str
    middle_name: str = ""
    last_name: str
    name_prefix: str = ""
    name_suffix: str = ""
    credential: str = ""
    gender: str = ""
    is_ours: bool = False
    primary_taxonomy: str | None = Field(None, description="NUCC code, e.g. 207Q00000X")
    secondary_taxonomies: list[str] = []
    location_ids: list[Id] = []
    clinical_interests: str = ""
    notes: str = ""
    email: str = ""
    email_consent: bool = False


class ContactIn(Schema):
    practice_id: Id
    location_id: Id | None = None
    first_name: str
    last_name: str = ""
    title: str = ""
    role: str = "other"
    influence: str = ""
    email: str = ""
    phone: str = ""
    birthday: date | None = None
    interests: str = ""
    personal_notes: str = ""
    email_consent: bool = False
    is_active: bool = True


def _partial(schema: type[Schema]) -> type[Schema]:
    """The same fields, all optional: PATCH changes only what it sends."""
    fields = {name: (info.annotation | None, None) for name, info in schema.model_fields.items()}
    from pydantic import create_model

    return create_model(f"{schema.__name__}Patch", __base__=Schema, **fields)  # type: ignore[call-overload]


PracticePatch = _partial(PracticeIn)
LocationPatch = _partial(LocationIn)
ProviderPatch = _partial(ProviderIn)
ContactPatch = _partial(ContactIn)


class DirectoryQuery(FilterSchema):
    q: str = Field("", description="name words, or the start of an NPI")
    specialty: str = Field("", description="NUCC code or words of a specialty name")
    city: str = ""
    zip_code: str = Field("", description="5-digit ZIP")
    near_site: Id | None = Field(None, description="one of our sites (location id); default: any")
    radius_miles: float | None = Field(None, gt=0, le=selectors.MAX_RADIUS_MILES)
    ours: bool | None = Field(None, description="true: our own; false: referring")
    include_inactive: bool = False

    def to_filters(self) -> selectors.DirectoryFilters:
        site = None
        if self.near_site is not None:
            site = get_object_or_404(selectors.our_sites(), pk=self.near_site)
        if site is not None and self.radius_miles is None:
            raise ValidationError({"radius_miles": ["Give radius_miles with near_site."]})
        return selectors.DirectoryFilters(
            q=self.q,
            specialty=self.specialty,
            city=self.city,
            zip_code=self.zip_code,
            near_site=site,
            radius_miles=self.radius_miles,
            ours=self.ours,
            include_inactive=self.include_inactive,
        )


def _set(payload: Schema, exclude: set[str] | None = None) -> dict[str, Any]:
    return payload.dict(exclude_unset=True, exclude_none=False, exclude=exclude or set())


def _locations(ids: list[int] | None) -> list[Location] | None:
    if ids is None:
        return None
    found = {loc.pk: loc for loc in Location.objects.select_related("practice").filter(pk__in=ids)}
    missing = [i for i in ids if i not in found]
    if missing:
        raise ValidationError({"location_ids": [f"Unknown location id(s): {', '.join(map(str, missing))}."]})
    return [found[i] for i in ids]


def _none_to_blank(data: dict[str, Any], keep_none: tuple[str, ...] = ()) -> dict[str, Any]:
    return {k: ("" if v is None and k not in keep_none else v) for k, v in data.items()}


# Practices ---------------------------------------------------------------------------------


@router.get("/practices", response=list[PracticeOut], summary="Search practices")
@paginate(PageNumberPagination, page_size=50, max_page_size=500)
def list_practices(request: HttpRequest, filters: Query[DirectoryQuery]) -> QuerySet[Practice]:
    return selectors.search_practices(filters.to_filters()).prefetch_related("locations__practice")


@router.get("/practices/{practice_id}", response=PracticeOut)
def get_practice(request: HttpRequest, practice_id: Id) -> Practice:
    return get_object_or_404(Practice.objects.prefetch_related("locations__practice"), pk=practice_id)


@router.post("/practices", response={201: PracticeOut})
def create_practice(request: HttpRequest, payload: PracticeIn) -> Status[Practice]:
    require(request.user.can_edit_directory)
    return Status(201, services.create_practice(actor=request.user, **_none_to_blank(payload.dict())))


@router.patch("/practices/{practice_id}", response=PracticeOut)
def update_practice(request: HttpRequest, practice_id: Id, payload: PracticePatch) -> Practice:  # type: ignore[valid-type]
    require(request.user.can_edit_directory)
    practice = get_object_or_404(Practice, pk=practice_id)
    return services.update_practice(practice, actor=request.user, **_none_to_blank(_set(payload)))


# Locations ---------------------------------------------------------------------------------


@router.get("/locations", response=list[LocationOut], summary="List locations (offices and our sites)")
@paginate(PageNumberPagination, page_size=50, max_page_size=500)
def list_locations(
    request: HttpRequest, practice_id: Id | None = None, sites_only: bool = False
) -> QuerySet[Location]:
    qs = Location.objects.select_related("practice").order_by("pk")
    if practice_id is not None:
        qs = qs.filter(practice_id=practice_id)
    if sites_only:
        qs = qs.filter(practice__is_ours=True)
    return qs


@router.get("/locations/{location_id}", response=LocationOut)
def get_location(request: HttpRequest, location_id: Id) -> Location:
    return get_object_or_404(Location.objects.select_related("practice"), pk=location_id)


@router.post("/locations", response={201: LocationOut})
def create_location(request: HttpRequest, payload: LocationIn) -> Status[Location]:
    require(request.user.can_edit_directory)
    data = _none_to_blank(payload.dict(), keep_none=("lunch_head_count",))
    practice = get_object_or_404(Practice, pk=data.pop("practice_id"))
    return Status(201, services.create_location(practice, actor=request.user, **data))


@router.patch("/locations/{location_id}", response=LocationOut)
def update_location(request: HttpRequest, location_id: Id, payload: LocationPatch) -> Location:  # type: ignore[valid-type]
    require(request.user.can_edit_directory)
    location = get_object_or_404(Location.objects.select_related("practice"), pk=location_id)
    data = _none_to_blank(_set(payload, exclude={"practice_id"}), keep_none=("lunch_head_count",))
    return services.update_location(location, actor=request.user, **data)


# Providers ---------------------------------------------------------------------------------


@router.get("/providers", response=list[ProviderOut], summary="Search providers")
@paginate(PageNumberPagination, page_size=50, max_page_size=500)
def list_providers(request: HttpRequest, filters: Query[DirectoryQuery]) -> QuerySet[Provider]:
    return selectors.with_locations(selectors.search_providers(filters.to_filters()))


@router.get("/providers/{provider_id}", response=ProviderOut)
def get_provider(request: HttpRequest, provider_id: Id) -> Provider:
    return get_object_or_404(
        selectors.with_locations(Provider.objects.select_related("primary_taxonomy")), pk=provider_id
    )


def _provider_args(data: dict[str, Any]) -> dict[str, Any]:
    data = _none_to_blank(data, keep_none=("primary_taxonomy",))
    if "primary_taxonomy" in data:
        data["primary_taxonomy_code"] = data.pop("primary_taxonomy") or ""
    if "secondary_taxonomies" in data:
        data["secondary_taxonomy_codes"] = data.pop("secondary_taxonomies")
    if "location_ids" in data:
        data["locations"] = _locations(data.pop("location_ids"))
    return data


@router.post("/providers", response={201: ProviderOut})
def create_provider(request: HttpRequest, payload: ProviderIn) -> Status[Provider]:
    require(request.user.can_edit_directory)
    provider = services.create_provider(actor=request.user, **_provider_args(payload.dict()))
    return Status(201, get_provider(request, provider.pk))


@router.patch("/providers/{provider_id}", response=ProviderOut)
def update_provider(request: HttpRequest, provider_id: Id, payload: ProviderPatch) -> Provider:  # type: ignore[valid-type]
    require(request.user.can_edit_directory)
    provider = get_object_or_404(Provider, pk=provider_id)
    services.update_provider(provider, actor=request.user, **_provider_args(_set(payload)))
    return get_provider(request, provider.pk)


# Contacts (office staff) ------------------------------------------------------------------------


@router.get("/contacts", response=list[ContactOut], summary="Search office staff")
@paginate(PageNumberPagination, page_size=50, max_page_size=500)
def list_contacts(
    request: HttpRequest, q: str = "", role: str = "", practice_id: Id | None = None
) -> QuerySet[Contact]:
    practice = get_object_or_404(Practice, pk=practice_id) if practice_id else None
    return selectors.search_contacts(q=q, role=role, practice=practice)


@router.get("/contacts/{contact_id}", response=ContactOut)
def get_contact(request: HttpRequest, contact_id: Id) -> Contact:
    return get_object_or_404(Contact, pk=contact_id)


def _contact_args(data: dict[str, Any]) -> dict[str, Any]:
    data = _none_to_blank(data, keep_none=("birthday", "location_id"))
    if "location_id" in data:
        loc_id = data.pop("location_id")
        data["location"] = get_object_or_404(Location, pk=loc_id) if loc_id else None
    return data


@router.post("/contacts", response={201: ContactOut})
def create_contact(request: HttpRequest, payload: ContactIn) -> Status[Contact]:
    require(request.user.can_edit_directory)
    data = payload.dict()
    practice = get_object_or_404(Practice, pk=data.pop("practice_id"))
    return Status(201, services.create_contact(practice, actor=request.user, **_contact_args(data)))


@router.patch("/contacts/{contact_id}", response=ContactOut)
def update_contact(request: HttpRequest, contact_id: Id, payload: ContactPatch) -> Contact:  # type: ignore[valid-type]
    require(request.user.can_edit_directory)
    contact = get_object_or_404(Contact, pk=contact_id)
    return services.update_contact(
        contact, actor=request.user, **_contact_args(_set(payload, exclude={"practice_id"}))
    )


# Reference data ------------------------------------------------------------------------------


@router.get("/taxonomies", response=list[TaxonomyOut], summary="Search NUCC specialties")
def list_taxonomies(request: HttpRequest, q: str = "") -> QuerySet[Any]:
    return selectors.search_taxonomies(q, limit=50)


@router.get("/sites", response=list[LocationOut], summary="Our own sites")
def list_sites(request: HttpRequest) -> QuerySet[Location]:
    return selectors.our_sites()
