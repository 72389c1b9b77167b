"""An office to work on: Maple Family Medicine with two physicians, a nurse practitioner, a nurse,
a referral coordinator and an office manager; two of our physicians; a liaison who owns it."""

from datetime import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from liaison.directory import services as directory
from liaison.outreach import services
from tests.conftest import make_npi


def local(y, m, d, hh=12, mm=0):
    return datetime(y, m, d, hh, mm, tzinfo=timezone.get_current_timezone())


@pytest.fixture
def office(referring_practice, referring_location, referring_provider):
    """Returns a namespace of the office's people."""

    class Office:
        practice = referring_practice
        location = referring_location
        dr_family = referring_provider
        dr_second = directory.create_provider(
            actor="test",
            first_name="Sam",
            last_name="Second",
            credential="DO",
            npi=make_npi(20),
            primary_taxonomy_code="207R00000X",
            locations=[referring_location],
        )
        np = directory.create_provider(
            actor="test",
            first_name="Nina",
            last_name="Practitioner",
            credential="NP",
            npi=make_npi(21),
            primary_taxonomy_code="363LF0000X",
            locations=[referring_location],
        )
        nurse = directory.create_contact(
            referring_practice, actor="test", first_name="Nora", last_name="Nurse", role="nurse"
        )
        coordinator = directory.create_contact(
            referring_practice,
            actor="test",
            first_name="Rita",
            last_name="Referral",
            role="referral_coordinator",
            email="rita@maple.example",
        )
        manager = directory.create_contact(
            referring_practice,
            actor="test",
            first_name="Olga",
            last_name="Office",
            role="office_manager",
            email="olga@maple.example",
        )

    return Office


@pytest.fixture
def our_doctors(site, our_physician):
    second = directory.create_provider(
        actor="test",
        first_name="Hugo",
        last_name="Hip",
        credential="MD",
        npi=make_npi(30),
        is_ours=True,
        primary_taxonomy_code="207X00000X",
        locations=[site],
    )
    return [our_physician, second]


@pytest.fixture
def liaison(make_user):
    return make_user("liaison", email="owner.liaison@example.org")


@pytest.fixture
def account(office, liaison):
    return services.add_to_pipeline(office.practice, actor="test", owner=liaison)


def lunch(account, office, our_doctors, *, when, cost="120.00", actor="test", **kw):
    kw.setdefault("providers", [office.dr_family, office.dr_second])
    kw.setdefault("contacts", [office.nurse, office.coordinator])
    return services.log_activity(
        actor=actor,
        account=account,
        kind="lunch",
        occurred_at=when,
        our_physicians=our_doctors,
        cost=Decimal(cost),
        **kw,
    )
