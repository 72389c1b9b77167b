import datetime as dt

import pytest

from liaison.referrals import services
from liaison.referrals.models import ServiceLine
from liaison.referrals.services import ReferrerInfo

PATIENT = {
    "patient_first_name": "Zelda",
    "patient_last_name": "Quackenbush",
    "patient_dob": dt.date(1961, 4, 2),
    "patient_phone": "614-555-0199",
    "patient_mrn": "MRN-778899",
    "member_id": "XQZ123456789",
    "reason": "Right knee osteoarthritis, failed injections",
    "icd10_codes": "M17.11",
    "payer": "Medicare",
}


@pytest.fixture
def service_line(db) -> ServiceLine:
    return ServiceLine.objects.create(
        name="Joint replacement", first_contact_days=1, appointment_days=10, note_days=2
    )


@pytest.fixture
def referral(referring_provider, site, our_physician, service_line):
    return services.receive_referral(
        actor="test",
        referrer=ReferrerInfo(npi=referring_provider.npi),
        site=site,
        referred_to_physician=our_physician,
        service_line=service_line,
        **PATIENT,
    )


@pytest.fixture
def make_referral(referring_provider, site, our_physician):
    def make(**overrides):
        fields = {**PATIENT, "site": site, "referred_to_physician": our_physician, **overrides}
        return services.receive_referral(
            actor="test", referrer=ReferrerInfo(npi=referring_provider.npi), **fields
        )

    return make
