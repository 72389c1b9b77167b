"""A small referral network to campaign to, and a real SMTP server on loopback.

Territories: North (ZIP codes 43081, 43082: Westerville) for Lee, Central (Franklin County, OH)
for Jordan. Westerville 43081 is in Franklin County too: its ZIP code puts it in North.

- Maple Family Medicine, Columbus 43212 (Central; account tier A, referring, owner Jordan):
  Rita (referral coordinator), Olga (office manager), Nora (nurse, no email); Dr Frank Family (MD,
  email and consent), Nina Practitioner (NP, email without consent).
- Oak Pediatrics, Westerville 43081 (North; account tier B, engaged, owner Lee): Ralph (referral
  coordinator), Nell (nurse); Dr Wes Oakley (DO, no email).
- Birch Internal Medicine, Westerville 43082 (North; not in the pipeline): Rhonda (referral
  coordinator), Bob (billing).
- Lakeside, Cleveland 44114 (no territory; target, no owner): Lana (referral coordinator).
Everyone with an address has consent unless said otherwise.

Building all that takes a few hundred queries, and nearly every campaign test needs it: a test
module builds it once, like Django's TestCase.setUpTestData (see `_module_world`).
"""

from __future__ import annotations

import copy
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import transaction
from django.utils import timezone

from liaison.accounts.models import User
from liaison.campaigns import services
from liaison.campaigns.models import Audience, CampaignKind, Channel, QuizRule
from liaison.directory import services as directory
from liaison.outreach import services as outreach
from liaison.outreach.models import Tier
from tests.campaigns.smtp import SmtpServer
from tests.conftest import (
    PASSWORD,
    _is_transactional,
    create_our_physician,
    create_our_practice,
    create_site,
    make_npi,
)


def _office(name, zip_code, city="Westerville"):
    practice = directory.create_practice(actor="test", name=name)
    location = directory.create_location(
        practice, actor="test", address_line1="1 Elm St", city=city, state="OH", zip_code=zip_code
    )
    return practice, location


def _staff(practice, first, role, email=None, consent=True, location=None):
    return directory.create_contact(
        practice,
        actor="test",
        first_name=first,
        last_name=role.split("_")[0].title(),
        role=role,
        email=email or "",
        email_consent=bool(email) and consent,
        location=location,
    )


def build_world(our_physician=None):
    outreach.ensure_reference_data()
    lee = User.objects.create_user("lee@example.org", PASSWORD, full_name="Lee Liaison", role="liaison")
    jordan = User.objects.create_user(
        "jordan@example.org", PASSWORD, full_name="Jordan Liaison", role="liaison"
    )
    north = outreach.save_territory(
        None, actor="test", name="North", liaison=lee, zip_codes=["43081", "43082"]
    )
    central = outreach.save_territory(
        None, actor="test", name="Central", liaison=jordan, counties=["Franklin County, OH"]
    )
    maple, maple_loc = _office("Maple Family Medicine", "43212", "Columbus")
    oak, oak_loc = _office("Oak Pediatrics", "43081")
    birch, _ = _office("Birch Internal Medicine", "43082")
    lake, _ = _office("Lakeside Internal Medicine", "44114", "Cleveland")
    w = SimpleNamespace(lee=lee, jordan=jordan, north=north, central=central)
    w.maple, w.oak, w.birch, w.lake = maple, oak, birch, lake
    w.rita = _staff(maple, "Rita", "referral_coordinator", "rita@maple.example")
    w.olga = _staff(maple, "Olga", "office_manager", "olga@maple.example")
    w.nora = _staff(maple, "Nora", "nurse")
    w.family = directory.create_provider(
        actor="test", first_name="Frank", last_name="Family", credential="MD", npi=make_npi(702),
        primary_taxonomy_code="207Q00000X", locations=[maple_loc], email="frank@maple.example", email_consent=True,
    )  # fmt: skip
    w.nina = directory.create_provider(
        actor="test", first_name="Nina", last_name="Practitioner", credential="NP", npi=make_npi(703),
        primary_taxonomy_code="363LF0000X", locations=[maple_loc], email="nina@maple.example",
    )  # fmt: skip
    w.ralph = _staff(oak, "Ralph", "referral_coordinator", "ralph@oak.example")
    w.nell = _staff(oak, "Nell", "nurse", "nell@oak.example")
    w.wes = directory.create_provider(
        actor="test", first_name="Wes", last_name="Oakley", credential="DO", npi=make_npi(704),
        primary_taxonomy_code="208000000X", locations=[oak_loc],
    )  # fmt: skip
    w.rhonda = _staff(birch, "Rhonda", "referral_coordinator", "rhonda@birch.example")
    w.bob = _staff(birch, "Bob", "billing", "bob@birch.example")
    w.lana = _staff(lake, "Lana", "referral_coordinator", "lana@lake.example")
    tiers = {t.code: t for t in Tier.objects.all()}
    w.maple_account = outreach.add_to_pipeline(maple, actor="test", owner=jordan, tier=tiers["A"])
    outreach.record_first_referral(maple, when=timezone.now() - timedelta(days=200), actor="test")
    w.oak_account = outreach.add_to_pipeline(oak, actor="test", owner=lee, tier=tiers["B"])
    outreach.change_stage(w.oak_account, "engaged", actor="test")
    w.lake_account = outreach.add_to_pipeline(lake, actor="test")
    w.our_physician = our_physician
    return w


@pytest.fixture(scope="module")
def _module_world(request, django_db_setup, django_db_blocker):
    """Our practice, its Downtown site, our physician and the world, built once per test module in
    a transaction left open until the module ends (then rolled back). Each test runs inside it in
    a savepoint rolled back after the test, as usual, and gets its own copies of the objects
    (`_world_copy`): every test starts from the same rows, whatever the test before it did.

    A test module marked transactional gets None (its tests commit, and empty the tables after
    them), and the fixtures below build everything per test as before."""
    marker = request.node.get_closest_marker("django_db")
    if marker is not None and marker.kwargs.get("transaction"):
        yield None
        return
    from liaison.directory.models import Taxonomy
    from liaison.directory.taxonomy import load_builtin

    with django_db_blocker.unblock():
        module_transaction = transaction.atomic()
        module_transaction.__enter__()
        try:
            if not Taxonomy.objects.exists():  # as tests/conftest.py's _reference_data does
                load_builtin()
            practice = create_our_practice()
            site = create_site(practice)
            physician = create_our_physician(site)
            shared = SimpleNamespace(
                our_practice=practice, site=site, our_physician=physician, world=build_world(physician)
            )
        except BaseException:
            transaction.set_rollback(True)
            module_transaction.__exit__(None, None, None)
            raise
    yield shared
    with django_db_blocker.unblock():
        transaction.set_rollback(True)
        module_transaction.__exit__(None, None, None)


@pytest.fixture
def _world_copy(request, _module_world, db):
    if _module_world is None:
        return None
    if _is_transactional(request):
        pytest.fail("a transactional test cannot use the module's shared world: give it a module of its own")
    return copy.deepcopy(_module_world)


@pytest.fixture
def our_practice(_world_copy, db):
    return _world_copy.our_practice if _world_copy else create_our_practice()


@pytest.fixture
def site(_world_copy, our_practice):
    return _world_copy.site if _world_copy else create_site(our_practice)


@pytest.fixture
def our_physician(_world_copy, site):
    return _world_copy.our_physician if _world_copy else create_our_physician(site)


@pytest.fixture
def world(_world_copy, site, our_physician):
    return _world_copy.world if _world_copy else build_world(our_physician)


@pytest.fixture
def segment_all(world):
    return services.save_segment(None, actor=world.lee, name="Everyone")


@pytest.fixture
def coordinators_north(world):
    return services.save_segment(
        None, actor=world.lee, name="Coordinators, North", audiences=[Audience.REFERRAL_COORDINATOR],
        territories=[world.north.pk],
    )  # fmt: skip


def email_template(
    body="Dear {{ recipient.salutation }} at {{ practice.name }},\n\nNews.\n\n{{ liaison.name }}", **kw
):
    return services.save_template(
        None, actor="test", name=kw.pop("name", "Test news"), channel=Channel.EMAIL,
        subject=kw.pop("subject", "News for {{ practice.name }}"), body_text=body, **kw,
    )  # fmt: skip


@pytest.fixture
def newsletter(world, segment_all):
    return services.create_campaign(
        actor=world.lee, name="Spring news", kind=CampaignKind.NEWSLETTER, segment=segment_all,
        template=email_template(),
    )  # fmt: skip


@pytest.fixture
def quiz_campaign(world, coordinators_north):
    template = email_template(
        name="Quiz", subject="Quiz for {{ practice.name }}",
        body="Hello {{ recipient.first_name }},\n\nAnswer here: {{ links.quiz }}\n\nPrize: {{ quiz.prize }}",
    )  # fmt: skip
    campaign = services.create_campaign(
        actor=world.lee,
        name="Knee quiz",
        kind=CampaignKind.QUIZ,
        segment=coordinators_north,
        template=template,
    )
    services.save_quiz(
        campaign,
        actor=world.lee,
        closes_at=timezone.now() + timedelta(days=7),
        rule=QuizRule.FIRST,
        prize="a coffee",
        questions=[
            services.QuestionIn("Which joint is the largest?", ["Knee", "Elbow"], 0),
            services.QuestionIn("ACL stands for?", ["Anterior cruciate ligament", "Arm"], 0),
        ],
    )
    return campaign


@pytest.fixture
def smtp(settings):
    """Django's SMTP backend pointed at a real SMTP server on loopback."""
    with SmtpServer() as server:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST = "127.0.0.1"
        settings.EMAIL_PORT = server.port
        settings.EMAIL_HOST_USER = ""
        settings.EMAIL_HOST_PASSWORD = ""
        settings.EMAIL_USE_TLS = False
        settings.EMAIL_USE_SSL = False
        settings.LIAISON_CAMPAIGN_RATE = 0
        yield server.recorder


@pytest.fixture(autouse=True)
def _campaign_settings(settings):
    settings.LIAISON_CAMPAIGN_FROM = "Test Orthopaedics <relations@ortho.example>"
    settings.LIAISON_POSTAL_ADDRESS = "1 Main St, Columbus, OH 43215"
    settings.LIAISON_CAMPAIGN_RATE = 0
    settings.LIAISON_CAMPAIGN_RETRY_SECONDS = 0.01
    settings.LIAISON_BASE_URL = "https://liaison.example.org"
