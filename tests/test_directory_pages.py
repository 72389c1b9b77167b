"""Directory pages: search, detail, create and edit, per role, with pinned query counts."""

import re

import pytest
from django.urls import reverse

from liaison.audit.models import AuditEvent
from liaison.directory import services
from liaison.directory.models import Contact, Location, Practice, Provider
from tests.conftest import ROLES, make_npi

READERS = ROLES
EDITORS = ["admin", "manager", "liaison", "coordinator"]
READ_ONLY = ["physician", "analyst"]


def test_anonymous_visitors_are_sent_to_sign_in(client, referring_provider):
    for url in [reverse("directory:providers"), reverse("directory:provider", args=[referring_provider.pk])]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))


@pytest.mark.parametrize("role", READERS)
def test_every_role_can_search_the_directory(client_for, role, referring_provider):
    c = client_for(role)
    response = c.get(reverse("directory:providers"), {"q": "Family"})
    assert response.status_code == 200
    assert b"Frank Family, MD" in response.content


def test_search_finds_a_provider_by_name_npi_specialty_city_and_zip(
    client_for, referring_provider, far_provider
):
    c = client_for("liaison")
    for query in [
        {"q": "frank"},
        {"q": referring_provider.npi},
        {"specialty": "family"},
        {"specialty": "207Q00000X"},
        {"city": "columbus"},
        {"zip_code": "43212"},
    ]:
        content = c.get(reverse("directory:providers"), query).content
        assert b"Frank Family" in content, query
        assert b"Faraway" not in content, query


def test_search_within_miles_of_our_sites_orders_by_distance(
    client_for, site, north_site, referring_provider, far_provider
):
    c = client_for("liaison")
    content = c.get(reverse("directory:providers"), {"radius_miles": "10", "ours": "false"}).content.decode()
    assert "Frank Family" in content and "Faraway" not in content
    assert "2.6" in content  # miles from the downtown site
    # From the North site only, the Grandview office is about 14 miles away.
    near_north = c.get(
        reverse("directory:providers"), {"near_site": north_site.pk, "radius_miles": "10"}
    ).content
    assert b"Frank Family" not in near_north
    far = c.get(reverse("directory:providers"), {"radius_miles": "200", "ours": "false"}).content.decode()
    assert far.index("Frank Family") < far.index("Faraway")


def test_bad_filters_get_a_message_not_an_error(client_for, site):
    c = client_for("liaison")
    response = c.get(reverse("directory:providers"), {"radius_miles": "lots", "zip_code": "12"})
    assert response.status_code == 200
    assert b"Enter a number" in response.content and b"Enter a 5-digit ZIP code" in response.content


def test_htmx_search_returns_only_the_results(client_for, referring_provider):
    c = client_for("liaison")
    response = c.get(reverse("directory:providers"), {"q": "frank"}, headers={"HX-Request": "true"})
    assert b"<html" not in response.content and b"Frank Family" in response.content


def test_practice_page_shows_offices_providers_and_staff(client_for, referring_provider, referring_practice):
    services.create_contact(
        referring_practice, actor="test", first_name="Rita", last_name="Referral", role="referral_coordinator"
    )
    c = client_for("liaison")
    content = c.get(reverse("directory:practice", args=[referring_practice.pk])).content.decode()
    for text in [
        "Maple Family Medicine",
        "10 Oak Ave",
        "(614) 555-0101",
        "Frank Family",
        "Rita Referral",
        "Referral coordinator",
    ]:
        assert text in content


def test_the_practice_header_joins_only_what_it_has(client_for, referring_practice):
    services.update_practice(referring_practice, actor="test", website="https://maple.example")
    c = client_for("liaison")
    page = c.get(reverse("directory:practice", args=[referring_practice.pk])).content.decode()
    assert '<p><a href="https://maple.example"' in page
    services.update_practice(referring_practice, actor="test", organization_npi=make_npi(77))
    page = c.get(reverse("directory:practice", args=[referring_practice.pk])).content.decode()
    assert f"Organisation NPI {make_npi(77)} · <a" in page


@pytest.mark.parametrize("role", EDITORS)
def test_editors_add_a_contact_and_it_is_audited(client_for, role, referring_practice, referring_location):
    c = client_for(role)
    url = reverse("directory:contact_new", args=[referring_practice.pk])
    response = c.post(
        url,
        {
            "first_name": "Olga",
            "last_name": "Office",
            "role": "office_manager",
            "influence": "high",
            "location": referring_location.pk,
            "email": "olga@maple.example",
            "phone": "6145550111",
            "email_consent": "on",
            "is_active": "on",
        },
    )
    assert response.status_code == 302, response.content
    contact = Contact.objects.get(first_name="Olga")
    assert contact.phone == "(614) 555-0111" and contact.email_consent_at is not None
    event = AuditEvent.objects.get(object_type="directory.contact", object_id=str(contact.pk))
    assert event.action == "create" and event.actor == c.user


@pytest.mark.parametrize("role", READ_ONLY)
def test_read_only_roles_cannot_open_or_post_any_edit_page(
    client_for, role, referring_provider, referring_practice, referring_location
):
    contact = services.create_contact(referring_practice, actor="test", first_name="Kim")
    c = client_for(role)
    urls = [
        reverse("directory:practice_new"),
        reverse("directory:practice_edit", args=[referring_practice.pk]),
        reverse("directory:location_new", args=[referring_practice.pk]),
        reverse("directory:location_edit", args=[referring_location.pk]),
        reverse("directory:provider_new"),
        reverse("directory:provider_edit", args=[referring_provider.pk]),
        reverse("directory:contact_new", args=[referring_practice.pk]),
        reverse("directory:contact_edit", args=[contact.pk]),
    ]
    for url in urls:
        assert c.get(url).status_code == 403, url
        assert c.post(url, {"name": "x", "first_name": "x"}).status_code == 403, url
    assert not c.get(reverse("directory:practice", args=[referring_practice.pk])).content.count(
        b"Add office staff"
    )


def test_a_bad_npi_malformed_zip_and_unknown_taxonomy_show_field_errors(client_for, referring_location):
    c = client_for("liaison")
    response = c.post(
        reverse("directory:provider_new"),
        {
            "first_name": "Bad",
            "last_name": "Data",
            "npi": "1234567890",
            "primary_taxonomy_code": "207Z99999X",
            "status": "active",
        },
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "is not a valid NPI: its check digit is wrong" in html
    assert "Unknown taxonomy code 207Z99999X" in html
    assert not Provider.objects.filter(last_name="Data").exists()

    response = c.post(
        reverse("directory:practice_new"),
        {
            "name": "Zip Trouble",
            "is_active": "on",
            "loc-address_line1": "1 A St",
            "loc-city": "Columbus",
            "loc-state": "OH",
            "loc-zip_code": "432",
        },
    )
    assert response.status_code == 200
    assert "&#x27;432&#x27; is not a ZIP code" in response.content.decode()
    assert not Practice.objects.filter(name="Zip Trouble").exists()


def test_creating_a_practice_with_its_main_office(client_for):
    c = client_for("manager")
    response = c.post(
        reverse("directory:practice_new"),
        {
            "name": "Brand New Pediatrics",
            "is_active": "on",
            "loc-address_line1": "7 Elm St",
            "loc-city": "Dublin",
            "loc-state": "OH",
            "loc-zip_code": "43017",
            "loc-phone": "614 555 0123",
            "loc-lunch_best_days": ["tue", "thu"],
        },
    )
    practice = Practice.objects.get(name="Brand New Pediatrics")
    assert response["Location"] == reverse("directory:practice", args=[practice.pk])
    location = practice.locations.get()
    assert location.lunch_best_days == ["tue", "thu"] and location.latitude is not None


def test_editing_a_provider_links_specialties_and_offices(client_for, referring_provider, referring_location):
    c = client_for("coordinator")
    url = reverse("directory:provider_edit", args=[referring_provider.pk])
    assert c.get(url).status_code == 200
    response = c.post(
        url,
        {
            "first_name": "Frank",
            "last_name": "Family",
            "credential": "DO",
            "npi": referring_provider.npi,
            "primary_taxonomy_code": "207Q00000X",
            "secondary_taxonomy_codes": "207QS0010X",
            "locations": [referring_location.pk],
            "status": "active",
            "clinical_interests": "sports injuries",
        },
    )
    assert response.status_code == 302, response.content.decode()
    referring_provider.refresh_from_db()
    assert referring_provider.credential == "DO"
    assert [t.code for t in referring_provider.secondary_taxonomies.all()] == ["207QS0010X"]
    event = AuditEvent.objects.filter(object_type="directory.provider", action="update").get()
    assert event.changes["credential"] == ["MD", "DO"]
    assert event.changes["secondary_taxonomies"] == [[], ["207QS0010X"]]


def _add_providers(n: int, location: Location, start: int) -> None:
    for i in range(n):
        services.create_provider(
            actor="test",
            first_name=f"P{i}",
            last_name=f"Provider{start + i}",
            npi=make_npi(100 + start + i),
            primary_taxonomy_code="207Q00000X",
            locations=[location],
            secondary_taxonomy_codes=["207R00000X"],
        )


@pytest.mark.parametrize(("radius", "queries"), [(None, 7), ("50", 8)])
def test_provider_list_query_count_does_not_grow_with_results(
    client_for, site, referring_location, django_assert_num_queries, radius, queries
):
    c = client_for("liaison")
    params = {"radius_miles": radius} if radius else {}
    _add_providers(3, referring_location, 0)
    c.get(reverse("directory:providers"), params)  # warm the session
    with django_assert_num_queries(queries):
        c.get(reverse("directory:providers"), params)
    _add_providers(12, referring_location, 100)
    with django_assert_num_queries(queries):
        response = c.get(reverse("directory:providers"), params)
    assert len(re.findall(rb"Provider1\d\d", response.content)) == 12


def test_practice_list_and_detail_query_counts_are_fixed(
    client_for, site, referring_practice, referring_location, django_assert_num_queries
):
    c = client_for("liaison")
    _add_providers(2, referring_location, 0)
    for i in range(3):
        services.create_contact(
            referring_practice, actor="test", first_name=f"Staff{i}", location=referring_location
        )
    c.get(reverse("directory:practices"))
    with django_assert_num_queries(6):
        c.get(reverse("directory:practices"))
    with django_assert_num_queries(7):  # +1: the practice's outreach accounts (the pipeline box)
        c.get(reverse("directory:practice", args=[referring_practice.pk]))
    for i in range(5):
        other = services.create_practice(actor="test", name=f"Other {i}")
        services.create_location(
            other, actor="test", address_line1="1 A", city="Columbus", state="OH", zip_code="43215"
        )
    _add_providers(6, referring_location, 50)
    for i in range(4):
        services.create_contact(
            referring_practice, actor="test", first_name=f"More{i}", location=referring_location
        )
    with django_assert_num_queries(6):
        c.get(reverse("directory:practices"))
    with django_assert_num_queries(7):  # +1: the practice's outreach accounts (the pipeline box)
        c.get(reverse("directory:practice", args=[referring_practice.pk]))


def test_contact_list_query_count_is_fixed(
    client_for, referring_practice, referring_location, django_assert_num_queries
):
    c = client_for("liaison")
    services.create_contact(referring_practice, actor="test", first_name="First", location=referring_location)
    c.get(reverse("directory:contacts"))
    with django_assert_num_queries(4):
        c.get(reverse("directory:contacts"))
    for i in range(10):
        services.create_contact(
            referring_practice, actor="test", first_name=f"C{i}", location=referring_location
        )
    with django_assert_num_queries(4):
        c.get(reverse("directory:contacts"))


def test_pages_fit_a_phone_screen(client_for, referring_provider):
    html = client_for("liaison").get(reverse("directory:providers")).content.decode()
    assert 'name="viewport" content="width=device-width, initial-scale=1"' in html
    assert 'class="table-wrap"' in html


def test_office_staff_read_as_cards_on_a_phone_with_their_numbers_to_tap(
    client_for, referring_practice, referring_location
):
    services.create_contact(
        referring_practice,
        actor="test",
        first_name="Rita",
        last_name="Coordinator",
        role="referral_coordinator",
        phone="614-555-0150",
        email="rita@maple.example",
        location=referring_location,
    )
    html = client_for("liaison").get(reverse("directory:contacts")).content.decode()
    assert 'class="results stack"' in html and 'data-label="Role"' in html
    assert 'href="tel:(614) 555-0150"' in html and 'href="mailto:rita@maple.example"' in html
