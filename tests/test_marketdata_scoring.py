"""Opportunity scoring: who is a competitor, who is an opportunity, and the reason in words."""

import pytest

from liaison.directory import services as directory
from liaison.directory.models import Taxonomy
from liaison.marketdata.models import MedicareProfile, Opportunity
from liaison.marketdata.scoring import _specialty_keys, explain, rescore
from tests.marketdata_files import build_market


@pytest.fixture
def market(site, our_physician, referring_provider, far_provider, tmp_path):
    return build_market(site, our_physician, referring_provider, far_provider, tmp_path)


def test_each_opportunity_says_why_in_words(market, referring_provider):
    frank = Opportunity.objects.get(provider=referring_provider)
    assert frank.explanation == (
        "shares 143 patients/yr with 3 other orthopaedic surgeons, 0 with us, 2.6 miles from our Downtown site"
    )
    assert (frank.shared_with_competitors, frank.competitors, frank.shared_with_us) == (143, 3, 0)
    loyal = Opportunity.objects.get(provider=market["loyal"])
    assert loyal.explanation == (
        "shares no patients with other orthopaedic surgeons, 40 with us (1 physician), 2.6 miles from our Downtown site"
    )


def test_leakage_to_competitors_ranks_above_an_existing_relationship(market, referring_provider):
    ranked = list(Opportunity.objects.order_by("-score").values_list("provider_id", flat=True))
    assert ranked == [referring_provider.pk, market["loyal"].pk]
    frank = Opportunity.objects.get(provider=referring_provider)
    assert frank.components["points"]["leakage"] == 40.0 and 0 < frank.score <= 100


def test_competitors_ours_far_and_deactivated_providers_are_not_opportunities(
    market, our_physician, far_provider, referring_provider
):
    scored = set(Opportunity.objects.values_list("provider_id", flat=True))
    assert our_physician.pk not in scored and far_provider.pk not in scored
    assert not scored & {s.pk for s in market["surgeons"]}
    directory.update_provider(referring_provider, actor="test", status="deactivated")
    rescore()
    assert not Opportunity.objects.filter(provider=referring_provider).exists()


def test_medicare_volume_is_used_and_mentioned_when_imported(market, referring_provider):
    MedicareProfile.objects.create(npi=referring_provider.npi, year=2022, beneficiaries=1250)
    rescore()
    frank = Opportunity.objects.get(provider=referring_provider)
    assert frank.volume == 1250 and frank.explanation.endswith("; 1,250 Medicare patients in 2022")
    assert frank.components["volume_source"] == "medicare"


def test_without_shared_patient_data_the_score_still_ranks_by_distance_and_fit(
    site, our_physician, referring_provider
):
    summary = rescore()
    assert summary.candidates == 1 and "no shared-patient data yet" in str(summary)
    frank = Opportunity.objects.get()
    assert frank.explanation == "no shared-patient data imported yet, 2.6 miles from our Downtown site"
    assert frank.specialty_fit == 0.5  # family medicine usually refers


def test_broad_classifications_compare_the_exact_specialty(db):
    codes = {t.code: (t.classification, t.name) for t in Taxonomy.objects.all()}
    assert _specialty_keys(["207RC0000X"], codes) == {
        "207RC0000X"
    }  # a cardiologist's peers are cardiologists
    assert _specialty_keys(["207XS0114X"], codes) == {"Orthopaedic Surgery"}


def test_explanations_count_one_and_many():
    text = explain(
        competitors_shared=12,
        competitors=1,
        ours_shared=0,
        our_physicians=0,
        miles=4.24,
        site_name="North",
        peer="orthopaedic surgeon",
        peers="orthopaedic surgeons",
        has_data=True,
        volume=None,
        volume_label="",
    )
    assert (
        text
        == "shares 12 patients/yr with 1 other orthopaedic surgeon, 0 with us, 4.2 miles from our North site"
    )


def test_rescoring_twice_gives_the_same_table(market):
    first = list(
        Opportunity.objects.order_by("provider_id").values_list("provider_id", "score", "explanation")
    )
    rescore()
    assert (
        list(Opportunity.objects.order_by("provider_id").values_list("provider_id", "score", "explanation"))
        == first
    )
