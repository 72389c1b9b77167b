"""Reads of the directory: search with filters, "within N miles of our sites", our organisation.

The directory holds no patient data, so every signed-in role may read it; writes are checked in
the views and the API (`user.can_edit_directory`).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet, Subquery

from liaison.core.geo import bounding_box, nearest_distance_expression, normalize_zip
from liaison.directory.models import Contact, Location, Practice, Provider, Taxonomy
from liaison.directory.validators import TAXONOMY_RE

MAX_RADIUS_MILES = 500


def our_sites() -> QuerySet[Location]:
    return Location.objects.sites().select_related("practice").order_by("name", "city")


def our_physicians() -> QuerySet[Provider]:
    return Provider.objects.ours().select_related("primary_taxonomy").order_by("last_name", "first_name")


def locations_near_sites(radius_miles: float, site: Location | None = None) -> QuerySet[Location]:
    """Referring locations within `radius_miles` of `site` (or of any of our sites), annotated
    with `distance` (miles to the nearest of those sites)."""
    sites = [site] if site is not None else list(our_sites().exclude(latitude__isnull=True))
    points = [(s.latitude, s.longitude) for s in sites if s.latitude is not None]
    if not points:
        return Location.objects.none()
    box = Q()
    for lat, lon in points:
        box |= bounding_box(lat, lon, radius_miles, "latitude", "longitude")
    return (
        Location.objects.filter(box)
        .annotate(distance=nearest_distance_expression("latitude", "longitude", points))
        .filter(distance__lte=radius_miles)
    )


def specialty_q(specialty: str, prefix: str) -> Q:
    term = specialty.strip()
    if TAXONOMY_RE.match(term.upper()):
        code = term.upper()
        return Q(**{f"{prefix}primary_taxonomy": code}) | Q(**{f"{prefix}secondary_taxonomies": code})
    matching = Taxonomy.objects.filter(
        Q(classification__icontains=term)
        | Q(specialization__icontains=term)
        | Q(display_name__icontains=term)
    ).values("code")
    return Q(**{f"{prefix}primary_taxonomy__in": matching}) | Q(
        **{f"{prefix}secondary_taxonomies__in": matching}
    )


@dataclass
class DirectoryFilters:
    q: str = ""
    specialty: str = ""
    city: str = ""
    zip_code: str = ""
    near_site: Location | None = None
    radius_miles: float | None = None
    ours: bool | None = None
    include_inactive: bool = False


def search_providers(f: DirectoryFilters) -> QuerySet[Provider]:
    """Providers matching every filter given; with a radius, nearest first with `distance_miles`."""
    qs = Provider.objects.select_related("primary_taxonomy")
    if not f.include_inactive:
        qs = qs.filter(status=Provider.Status.ACTIVE)
    if f.ours is not None:
        qs = qs.filter(is_ours=f.ours)
    for token in f.q.split():
        if token.isdigit():
            qs = qs.filter(npi__startswith=token)
        else:
            qs = qs.filter(Q(last_name__icontains=token) | Q(first_name__icontains=token))
    if f.specialty.strip():
        qs = qs.filter(
            Exists(Provider.objects.filter(pk=OuterRef("pk")).filter(specialty_q(f.specialty, "")))
        )
    at_location = Location.objects.filter(providers=OuterRef("pk"))
    if f.city.strip():
        qs = qs.filter(Exists(at_location.filter(city__iexact=f.city.strip())))
    if f.zip_code.strip():
        qs = qs.filter(
            Exists(at_location.filter(zip_code__startswith=(normalize_zip(f.zip_code) or f.zip_code)[:5]))
        )
    if f.radius_miles is not None:
        near = locations_near_sites(f.radius_miles, f.near_site).filter(providers=OuterRef("pk"))
        qs = qs.annotate(distance_miles=Subquery(near.order_by("distance").values("distance")[:1]))
        return qs.filter(distance_miles__isnull=False).order_by("distance_miles", "last_name", "first_name")
    return qs.order_by("last_name", "first_name", "pk")


def with_locations(qs: QuerySet[Provider]) -> QuerySet[Provider]:
    """Prefetch what a provider list shows (locations with their practice, other specialties)."""
    return qs.prefetch_related(
        Prefetch("locations", queryset=Location.objects.select_related("practice")),
        "secondary_taxonomies",
    )


def search_practices(f: DirectoryFilters) -> QuerySet[Practice]:
    qs = Practice.objects.all()
    if not f.include_inactive:
        qs = qs.filter(is_active=True)
    if f.ours is not None:
        qs = qs.filter(is_ours=f.ours)
    for token in f.q.split():
        if token.isdigit():
            qs = qs.filter(organization_npi__startswith=token)
        else:
            qs = qs.filter(name__icontains=token)
    at_location = Location.objects.filter(practice=OuterRef("pk"))
    if f.city.strip():
        qs = qs.filter(Exists(at_location.filter(city__iexact=f.city.strip())))
    if f.zip_code.strip():
        qs = qs.filter(
            Exists(at_location.filter(zip_code__startswith=(normalize_zip(f.zip_code) or f.zip_code)[:5]))
        )
    if f.specialty.strip():
        qs = qs.filter(
            Exists(
                Provider.objects.filter(locations__practice=OuterRef("pk")).filter(
                    specialty_q(f.specialty, "")
                )
            )
        )
    qs = qs.annotate(
        provider_count=Count("locations__providers", distinct=True),
        location_count=Count("locations", distinct=True),
    )
    if f.radius_miles is not None:
        near = locations_near_sites(f.radius_miles, f.near_site).filter(practice=OuterRef("pk"))
        qs = qs.annotate(distance_miles=Subquery(near.order_by("distance").values("distance")[:1]))
        return qs.filter(distance_miles__isnull=False).order_by("distance_miles", "name")
    return qs.order_by("name", "pk")


def search_contacts(q: str = "", role: str = "", practice: Practice | None = None) -> QuerySet[Contact]:
    qs = Contact.objects.select_related("practice", "location").filter(is_active=True)
    if practice is not None:
        qs = qs.filter(practice=practice)
    if role:
        qs = qs.filter(role=role)
    for token in q.split():
        qs = qs.filter(
            Q(first_name__icontains=token) | Q(last_name__icontains=token) | Q(email__icontains=token)
        )
    return qs.order_by("last_name", "first_name", "pk")


def practices_with_details() -> QuerySet[Practice]:
    """Practices with everything the practice page shows, in a fixed number of queries."""
    providers = Provider.objects.select_related("primary_taxonomy").order_by("last_name", "first_name")
    return Practice.objects.prefetch_related(
        Prefetch(
            "locations",
            queryset=Location.objects.order_by("name", "city")
            .select_related("referral_preference")
            .prefetch_related(Prefetch("providers", queryset=providers)),
        ),
        Prefetch("contacts", queryset=Contact.objects.filter(is_active=True).select_related("location")),
    )


def search_taxonomies(q: str, limit: int = 30) -> QuerySet[Taxonomy]:
    qs = Taxonomy.objects.all()
    for token in q.split():
        qs = qs.filter(
            Q(code__istartswith=token)
            | Q(classification__icontains=token)
            | Q(specialization__icontains=token)
            | Q(display_name__icontains=token)
        )
    return qs[:limit]


def directory_summary() -> dict:
    """The counts and lists the home page shows."""
    return {
        "our_practice": Practice.objects.ours().order_by("pk").first(),
        "sites": list(our_sites()),
        "our_physicians": list(our_physicians()),
        "referring_practices": Practice.objects.referring().filter(is_active=True).count(),
        "referring_providers": Provider.objects.referring().filter(status=Provider.Status.ACTIVE).count(),
        "contacts": Contact.objects.filter(is_active=True, practice__is_ours=False).count(),
    }
