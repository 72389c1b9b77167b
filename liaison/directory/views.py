"""Directory pages. Reads for every signed-in role; writes for the roles that edit the directory."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from liaison.accounts.models import DIRECTORY_EDITOR_ROLES
from liaison.accounts.views import role_required
from liaison.core.forms import apply_errors
from liaison.core.pagination import paginate
from liaison.directory import selectors, services
from liaison.directory.forms import (
    ContactForm,
    ContactSearchForm,
    LocationForm,
    PracticeForm,
    ProviderForm,
    SearchForm,
)
from liaison.directory.models import Contact, Location, Practice, Provider, Taxonomy

editor_required = role_required(*DIRECTORY_EDITOR_ROLES)


def _list_page(
    request: HttpRequest, template: str, results_template: str, context: dict[str, Any]
) -> HttpResponse:
    """Full page, or only the results when htmx asks (live filtering keeps the URL shareable)."""
    if request.htmx and not request.htmx.boosted:
        return render(request, results_template, context)
    return render(request, template, context)


# Providers ----------------------------------------------------------------------------------


@login_required
def providers(request: HttpRequest) -> HttpResponse:
    form = SearchForm(request.GET or None)
    qs: QuerySet[Provider] = Provider.objects.none()
    if form.is_bound and form.is_valid():
        qs = selectors.search_providers(form.filters())
    elif not form.is_bound:
        qs = selectors.search_providers(selectors.DirectoryFilters())
    page = paginate(request, selectors.with_locations(qs))
    ctx = {"form": form, "page": page, "nav": "providers", "hx_target": "#results"}
    return _list_page(request, "directory/providers.html", "directory/_provider_results.html", ctx)


@login_required
def provider_detail(request: HttpRequest, pk: int) -> HttpResponse:
    provider = get_object_or_404(
        selectors.with_locations(Provider.objects.select_related("primary_taxonomy")), pk=pk
    )
    return render(request, "directory/provider_detail.html", {"provider": provider, "nav": "providers"})


def _location_choices(provider: Provider | None, practice: Practice | None) -> QuerySet[Location]:
    q = Q(pk__in=[])
    if provider is not None and provider.pk:
        q |= Q(providers=provider)
    if practice is not None:
        q |= Q(practice=practice)
    return Location.objects.filter(q).select_related("practice").distinct().order_by("practice__name", "name")


@editor_required
def provider_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    provider = get_object_or_404(Provider, pk=pk) if pk else None
    practice = None
    if request.GET.get("practice", "").isdigit():
        practice = get_object_or_404(Practice, pk=request.GET["practice"])
    form = ProviderForm(
        request.POST or None,
        instance=Provider.objects.get(pk=pk) if pk else None,  # a copy: the form's validation mutates it
        location_choices=_location_choices(provider, practice),
        initial={"is_ours": practice.is_ours} if practice and not provider else None,
    )
    if request.method == "POST" and form.is_valid():
        data = {name: form.cleaned_data[name] for name in form.Meta.fields}
        kwargs = {
            "locations": form.cleaned_data["locations"],
            "secondary_taxonomy_codes": form.secondary_codes(),
            "primary_taxonomy_code": form.cleaned_data["primary_taxonomy_code"],
        }
        try:
            if provider is None:
                provider = services.create_provider(actor=request.user, **kwargs, **data)
            else:
                services.update_provider(provider, actor=request.user, **kwargs, **data)
        except ValidationError as exc:
            apply_errors(
                form,
                exc,
                {
                    "primary_taxonomy": "primary_taxonomy_code",
                    "secondary_taxonomies": "secondary_taxonomy_codes",
                },
            )
        else:
            messages.success(request, f"Saved {provider.display_name}.")
            return redirect("directory:provider", provider.pk)
    return render(
        request,
        "directory/provider_form.html",
        {
            "form": form,
            "provider": provider,
            "practice": practice,
            "nav": "providers",
            "taxonomies": Taxonomy.objects.only("code", "display_name", "classification", "specialization"),
        },
    )


# Practices ----------------------------------------------------------------------------------


@login_required
def practices(request: HttpRequest) -> HttpResponse:
    form = SearchForm(request.GET or None)
    qs: QuerySet[Practice] = Practice.objects.none()
    if form.is_bound and form.is_valid():
        qs = selectors.search_practices(form.filters())
    elif not form.is_bound:
        qs = selectors.search_practices(selectors.DirectoryFilters())
    page = paginate(request, qs.prefetch_related("locations"))
    ctx = {"form": form, "page": page, "nav": "practices", "hx_target": "#results"}
    return _list_page(request, "directory/practices.html", "directory/_practice_results.html", ctx)


@login_required
def practice_detail(request: HttpRequest, pk: int) -> HttpResponse:
    practice = get_object_or_404(selectors.practices_with_details(), pk=pk)
    return render(request, "directory/practice_detail.html", {"practice": practice, "nav": "practices"})


@editor_required
def practice_new(request: HttpRequest) -> HttpResponse:
    form = PracticeForm(request.POST or None, initial={"is_active": True})
    location_form = LocationForm(request.POST or None, prefix="loc", initial={"is_active": True})
    del location_form.fields["is_active"]
    if request.method == "POST" and form.is_valid() & location_form.is_valid():
        loc_data = {k: v for k, v in location_form.cleaned_data.items()}
        try:
            practice, _ = services.create_practice_with_location(
                actor=request.user, practice=form.cleaned_data, location=loc_data
            )
        except ValidationError as exc:
            loc_errors = {
                k.removeprefix("location."): v
                for k, v in exc.message_dict.items()
                if k.startswith("location.")
            }
            practice_errors = {k: v for k, v in exc.message_dict.items() if not k.startswith("location.")}
            if practice_errors:
                apply_errors(form, ValidationError(practice_errors))
            if loc_errors:
                apply_errors(location_form, ValidationError(loc_errors))
        else:
            messages.success(request, f"Added {practice.name}.")
            return redirect("directory:practice", practice.pk)
    return render(
        request,
        "directory/practice_form.html",
        {"form": form, "location_form": location_form, "nav": "practices"},
    )


@editor_required
def practice_edit(request: HttpRequest, pk: int) -> HttpResponse:
    practice = get_object_or_404(Practice, pk=pk)
    form = PracticeForm(request.POST or None, instance=Practice.objects.get(pk=pk))
    if request.method == "POST" and form.is_valid():
        try:
            services.update_practice(practice, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, f"Saved {practice.name}.")
            return redirect("directory:practice", practice.pk)
    return render(
        request, "directory/practice_form.html", {"form": form, "practice": practice, "nav": "practices"}
    )


@editor_required
def location_edit(
    request: HttpRequest, practice_pk: int | None = None, pk: int | None = None
) -> HttpResponse:
    location = get_object_or_404(Location.objects.select_related("practice"), pk=pk) if pk else None
    practice = location.practice if location else get_object_or_404(Practice, pk=practice_pk)
    form = LocationForm(
        request.POST or None,
        instance=Location.objects.select_related("practice").get(pk=pk)
        if pk
        else Location(practice=practice),
        initial={"state": practice.locations.values_list("state", flat=True).first()} if not pk else None,
    )
    if request.method == "POST" and form.is_valid():
        try:
            if location is None:
                location = services.create_location(practice, actor=request.user, **form.cleaned_data)
            else:
                services.update_location(location, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, f"Saved {location}.")
            return redirect("directory:practice", practice.pk)
    return render(
        request,
        "directory/location_form.html",
        {"form": form, "location": location, "practice": practice, "nav": "practices"},
    )


# Office staff -------------------------------------------------------------------------------


@login_required
def contacts(request: HttpRequest) -> HttpResponse:
    form = ContactSearchForm(request.GET or None)
    data = form.cleaned_data if form.is_valid() else {}
    page = paginate(request, selectors.search_contacts(q=data.get("q", ""), role=data.get("role", "")))
    ctx = {"form": form, "page": page, "nav": "contacts", "hx_target": "#results"}
    return _list_page(request, "directory/contacts.html", "directory/_contact_results.html", ctx)


@editor_required
def contact_edit(request: HttpRequest, practice_pk: int | None = None, pk: int | None = None) -> HttpResponse:
    contact = get_object_or_404(Contact.objects.select_related("practice"), pk=pk) if pk else None
    practice = contact.practice if contact else get_object_or_404(Practice, pk=practice_pk)
    form = ContactForm(
        request.POST or None,
        instance=Contact.objects.get(pk=pk) if pk else None,
        practice=practice,
        initial={"is_active": True} if not pk else None,
    )
    if request.method == "POST" and form.is_valid():
        try:
            if contact is None:
                contact = services.create_contact(practice, actor=request.user, **form.cleaned_data)
            else:
                services.update_contact(contact, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, f"Saved {contact}.")
            return redirect("directory:practice", practice.pk)
    return render(
        request,
        "directory/contact_form.html",
        {"form": form, "contact": contact, "practice": practice, "nav": "contacts"},
    )
