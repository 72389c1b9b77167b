import datetime as dt
import random
from zoneinfo import ZoneInfo

import pytest

from liaison.directory import services as directory
from liaison.outreach import services as outreach
from liaison.outreach.models import Stage
from liaison.referrals import services as referrals
from liaison.referrals.models import Referral, ServiceLine, Status
from liaison.referrals.services import ReferrerInfo
from tests.conftest import make_npi
from tests.referrals.conftest import PATIENT

AS_OF = dt.date(2026, 6, 15)
TZ = ZoneInfo("America/New_York")


def at(day: dt.date, hour: int = 10) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=TZ)


def weekdays_spread(rng: random.Random, start: dt.date, end: dt.date, per_month: float) -> list[dt.date]:
    """Poisson-ish referral dates on weekdays between start and end (exclusive)."""
    out, day = [], start
    rate = per_month * 12 / 261  # per weekday
    while day < end:
        if day.weekday() < 5:
            # a Poisson draw for one day
            k, p, limit = 0, 1.0, pow(2.718281828, -rate)
            while True:
                p *= rng.random()
                if p < limit:
                    break
                k += 1
            out += [day] * k
        day += dt.timedelta(days=1)
    return out


def bulk_history(provider, location, site, physician, service_line, days: list[dt.date], payer="Aetna"):
    """History rows written directly (as an import would), with encrypted placeholder patients."""
    rows = []
    for i, day in enumerate(days):
        received = at(day)
        seen = received + dt.timedelta(days=12) if i % 5 else None
        rows.append(
            Referral(
                patient_first_name="Hist",
                patient_last_name=f"Patient{i}",
                patient_dob=dt.date(1950, 1, 1),
                patient_key=f"k{provider.pk}-{i}",
                patient_name_key=f"n{provider.pk}-{i}",
                payer=payer,
                referring_provider=provider,
                referring_location=location,
                site=site,
                referred_to_physician=physician,
                service_line=service_line,
                status=Status.CLOSED if seen else Status.DECLINED,
                received_at=received,
                first_contact_at=received + dt.timedelta(days=1),
                appointment_at=received + dt.timedelta(days=10) if seen else None,
                seen_at=seen,
                note_sent_at=seen + dt.timedelta(days=1) if seen else None,
            )
        )
    Referral.objects.bulk_create(rows, batch_size=500)


@pytest.fixture
def network(site, our_physician, referring_practice, referring_location, referring_provider, make_user):
    """Two referrers with 20 months of history as of AS_OF: Dr. Family (Maple Family Medicine) sent
    about 6 a month until 100 days ago, then stopped; Dr. Steady (Birch Pediatrics) sends about 4 a
    month throughout. Maple is an account at "referring" owned by the liaison."""
    rng = random.Random(7)
    service_line = ServiceLine.objects.create(name="Joint replacement", appointment_days=10, note_days=2)
    birch = directory.create_practice(actor="test", name="Birch Pediatrics")
    birch_loc = directory.create_location(
        birch, actor="test", address_line1="3 Elm St", city="Columbus", state="OH", zip_code="43214"
    )
    steady = directory.create_provider(
        actor="test",
        first_name="Sam",
        last_name="Steady",
        credential="MD",
        npi=make_npi(40),
        primary_taxonomy_code="208000000X",
        locations=[birch_loc],
    )
    liaison = make_user("liaison", email="lee@example.org")
    maple = outreach.add_to_pipeline(referring_practice, actor="test", owner=liaison)
    outreach.change_stage(maple, Stage.REFERRING, actor="test")
    start = AS_OF - dt.timedelta(days=600)
    drop = AS_OF - dt.timedelta(days=100)
    bulk_history(
        referring_provider,
        referring_location,
        site,
        our_physician,
        service_line,
        weekdays_spread(rng, start, drop, 6.0),
    )
    bulk_history(
        steady,
        birch_loc,
        site,
        our_physician,
        service_line,
        weekdays_spread(rng, start, AS_OF - dt.timedelta(days=20), 4.0),
        payer="Medicare",
    )
    # One referral through the real intake, with a patient whose name must never reach analytics.
    live = referrals.receive_referral(
        actor="test",
        referrer=ReferrerInfo(npi=steady.npi),
        site=site,
        referred_to_physician=our_physician,
        service_line=service_line,
        received_at=at(AS_OF - dt.timedelta(days=3)),
        **PATIENT,
    )
    return {
        "maple": maple,
        "family": referring_provider,
        "steady": steady,
        "liaison": liaison,
        "service_line": service_line,
        "live": live,
        "birch": birch,
    }
