"""Refer back: partners who refer to us come first; reciprocity counts both directions."""

from django.urls import reverse

from liaison.directory import services as directory
from liaison.referrals import referback
from liaison.referrals.models import OutboundReferral
from tests.conftest import make_npi


def test_partners_who_refer_to_us_are_suggested_first(
    referral, referring_provider, referring_location, far_provider
):
    stranger = directory.create_provider(
        actor="test",
        first_name="New",
        last_name="Doctor",
        npi=make_npi(40),
        primary_taxonomy_code="207Q00000X",
        locations=[referring_location],
    )
    suggestions = referback.suggest_partners("family medicine", patient_zip="43215")
    assert [s.provider for s in suggestions] == [referring_provider, stranger]
    assert "referred 1 patient to us" in suggestions[0].why and "miles from the patient" in suggestions[0].why
    assert far_provider not in [
        s.provider for s in referback.suggest_partners("internal", patient_zip="43215")
    ]


def test_referring_out_is_recorded_and_counted_in_reciprocity(
    client_for, referral, referring_provider, referring_practice
):
    c = client_for("coordinator")
    page = c.get(reverse("referrals:refer_out", args=[referral.pk]), {"specialty": "family"}).content.decode()
    assert "Frank Family" in page
    c.post(
        reverse("referrals:refer_out", args=[referral.pk]),
        {"provider": referring_provider.pk, "reason": "needs a PCP"},
    )
    outbound = OutboundReferral.objects.get()
    assert outbound.referral == referral and outbound.reason == "needs a PCP"
    rows = referback.reciprocity()
    assert rows == [{"practice": referring_practice, "received": 1, "sent": 1, "balance": 0}]
    assert "Maple Family Medicine" in c.get(reverse("referrals:reciprocity")).content.decode()
    assert (
        client_for("liaison", email="l@example.org").get(reverse("referrals:reciprocity")).status_code == 403
    )
