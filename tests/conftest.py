"""Personas and a small directory shared by the tests.

Personas: an admin, a manager, a liaison (must never see patient data), a coordinator, a
physician (one of ours) and an analyst (read-only). The directory: our practice with two sites
in Columbus and Westerville, one of our physicians, and a referring family practice.
"""

from __future__ import annotations

import gc

import pytest
from django.test import Client

from liaison.accounts.models import Role, User
from liaison.directory import services as directory
from liaison.directory.models import Location, Practice, Provider

PASSWORD = "correct horse battery staple"
ROLES = [r.value for r in Role]


def make_npi(seed: int) -> str:
    """A valid NPI (check digit per the Luhn rule with the 80840 prefix)."""
    from liaison.directory.validators import npi_check_digit_ok

    body = f"1{seed:08d}"
    return next(body + d for d in "0123456789" if npi_check_digit_ok(body + d))


@pytest.fixture
def make_user(db):
    def make(role: str, email: str | None = None, provider: Provider | None = None) -> User:
        return User.objects.create_user(
            email or f"{role}@example.org",
            PASSWORD,
            full_name=f"{role.title()} Person",
            role=role,
            provider=provider,
        )

    return make


def create_our_practice() -> Practice:
    return directory.create_practice(actor="test", name="Test Orthopaedics", is_ours=True)


def create_site(our_practice: Practice) -> Location:
    return directory.create_location(
        our_practice,
        actor="test",
        name="Downtown",
        address_line1="1 Main St",
        city="Columbus",
        state="OH",
        zip_code="43215",
    )


def create_our_physician(site: Location) -> Provider:
    return directory.create_provider(
        actor="test",
        first_name="Olivia",
        last_name="Bone",
        credential="MD",
        npi=make_npi(1),
        is_ours=True,
        primary_taxonomy_code="207X00000X",
        locations=[site],
    )


@pytest.fixture
def our_practice(db) -> Practice:
    return create_our_practice()


@pytest.fixture
def site(our_practice) -> Location:
    return create_site(our_practice)


@pytest.fixture
def north_site(our_practice) -> Location:
    return directory.create_location(
        our_practice,
        actor="test",
        name="North",
        address_line1="2 State St",
        city="Westerville",
        state="OH",
        zip_code="43081",
    )


@pytest.fixture
def our_physician(site) -> Provider:
    return create_our_physician(site)


@pytest.fixture
def referring_practice(db) -> Practice:
    return directory.create_practice(actor="test", name="Maple Family Medicine")


@pytest.fixture
def referring_location(referring_practice) -> Location:
    # Grandview Heights, about 3 miles from downtown Columbus.
    return directory.create_location(
        referring_practice,
        actor="test",
        address_line1="10 Oak Ave",
        city="Columbus",
        state="OH",
        zip_code="43212",
        phone="614-555-0101",
        fax="614-555-0102",
    )


@pytest.fixture
def referring_provider(referring_location) -> Provider:
    return directory.create_provider(
        actor="test",
        first_name="Frank",
        last_name="Family",
        credential="MD",
        npi=make_npi(2),
        primary_taxonomy_code="207Q00000X",
        locations=[referring_location],
    )


@pytest.fixture
def far_provider(db) -> Provider:
    """A referring provider in Cleveland, about 125 miles from our sites."""
    practice = directory.create_practice(actor="test", name="Lakeside Internal Medicine")
    loc = directory.create_location(
        practice, actor="test", address_line1="5 Lake Rd", city="Cleveland", state="OH", zip_code="44114"
    )
    return directory.create_provider(
        actor="test",
        first_name="Lake",
        last_name="Faraway",
        credential="DO",
        npi=make_npi(3),
        primary_taxonomy_code="207R00000X",
        locations=[loc],
    )


@pytest.fixture
def client_for(make_user):
    """A logged-in test client for a role: client_for("liaison")."""

    def login(role: str, **kwargs) -> Client:
        user = make_user(role, **kwargs)
        c = Client()
        c.force_login(user)
        c.user = user
        return c

    return login


@pytest.fixture(scope="session", autouse=True)
def _fewer_garbage_collections():
    """Django's models, querysets and requests make many objects: with Python's default thresholds
    the cyclic garbage collector takes about 8% of the run, mostly re-scanning the modules and
    objects loaded at startup. Freeze those and collect less often (at most a few hundred MB)."""
    gc.collect()
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(20_000, 20, 50)
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Rate limits and throttles live in the cache: each test starts with none."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _reference_data(request):
    """Transactional tests (browser tests) empty the tables after them, migration data included:
    put the built-in specialties back for the tests that follow."""
    if request.node.get_closest_marker("django_db") is None and not {"db", "transactional_db"} & set(
        request.fixturenames
    ):
        return
    request.getfixturevalue("transactional_db" if _is_transactional(request) else "db")
    from liaison.directory.models import Taxonomy
    from liaison.directory.taxonomy import load_builtin

    if not Taxonomy.objects.exists():
        load_builtin()


def _is_transactional(request) -> bool:
    marker = request.node.get_closest_marker("django_db")
    return bool(marker and marker.kwargs.get("transaction")) or "transactional_db" in request.fixturenames


@pytest.fixture(params=["polars", "duckdb"])
def reader(request, settings):
    """Each reader on its own: the fast one (Polars) and the careful one (DuckDB) keep the same rows."""
    settings.MARKETDATA_FAST_SCAN = request.param == "polars"
    return request.param
