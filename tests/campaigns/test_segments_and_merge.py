"""Who a segment means (evaluated again at send time), and what a template may merge."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from liaison.campaigns import merge, segments, services
from liaison.campaigns.mail import Content, render
from liaison.campaigns.models import Audience, Campaign, Consent, Recipient
from liaison.directory import services as directory
from liaison.outreach import services as outreach
from tests.campaigns.conftest import email_template


def names(segment):
    return sorted(m.name for m in segments.evaluate(segment))


def seg(world, **criteria):
    return services.save_segment(None, actor=world.lee, name="s", **criteria)


def test_referral_coordinators_in_one_territory(world, coordinators_north):
    # Oak's ZIP code 43081 is also in Franklin County: the ZIP code puts it in North, not Central.
    assert names(coordinators_north) == ["Ralph Referral", "Rhonda Referral"]
    central = seg(world, audiences=[Audience.REFERRAL_COORDINATOR], territories=[world.central.pk])
    assert names(central) == ["Rita Referral"]


def test_physicians_mid_levels_and_staff_roles(world):
    assert names(seg(world, audiences=[Audience.PHYSICIAN])) == ["Frank Family, MD", "Wes Oakley, DO"]
    assert names(seg(world, audiences=[Audience.MID_LEVEL])) == ["Nina Practitioner, NP"]
    assert names(seg(world, audiences=[Audience.NURSE, Audience.OFFICE_MANAGER])) == [
        "Nell Nurse",
        "Nora Nurse",
        "Olga Office",
    ]
    everyone = segments.evaluate(seg(world))
    assert len(everyone) == 11
    frank = next(m for m in everyone if m.kind == "provider" and m.last_name == "Family")
    assert frank.salutation == "Dr. Family" and frank.liaison_name == "Jordan Liaison"


def test_tier_stage_specialty_and_consent(world):
    assert {m.practice_name for m in segments.evaluate(seg(world, tiers=["A"]))} == {"Maple Family Medicine"}
    assert {m.practice_name for m in segments.evaluate(seg(world, stages=["engaged", "target"]))} == {
        "Oak Pediatrics",
        "Lakeside Internal Medicine",
    }
    # Pediatrics (208000000X): Dr Oakley, and the staff of his practice.
    assert names(seg(world, specialties=["208000000X"])) == ["Nell Nurse", "Ralph Referral", "Wes Oakley, DO"]
    consented = segments.evaluate(seg(world, consent=Consent.EMAIL))
    assert all(m.consent for m in consented) and "Nina Practitioner, NP" not in {m.name for m in consented}
    assert names(seg(world, consent=Consent.NO_EMAIL)) == [
        "Nina Practitioner, NP",
        "Nora Nurse",
        "Wes Oakley, DO",
    ]


def test_last_touch(world):
    outreach.log_activity(
        actor="test", account=world.oak_account, kind="visit", occurred_at=timezone.now() - timedelta(days=10)
    )
    outreach.log_activity(
        actor="test",
        account=world.maple_account,
        kind="call",
        occurred_at=timezone.now() - timedelta(days=100),
    )
    recent = segments.evaluate(seg(world, touched_within_days=30))
    assert {m.practice_name for m in recent} == {"Oak Pediatrics"}
    # Not touched for 60 days: Maple (100 days), Lakeside (never), Birch (not in the pipeline).
    stale = segments.evaluate(seg(world, untouched_days=60))
    assert {m.practice_name for m in stale} == {
        "Maple Family Medicine",
        "Lakeside Internal Medicine",
        "Birch Internal Medicine",
    }


def test_a_segment_is_evaluated_again_when_the_campaign_is_sent(world, coordinators_north):
    before = names(coordinators_north)
    practice = world.oak
    directory.create_contact(
        practice, actor="test", first_name="Newly", last_name="Hired", role="referral_coordinator",
        email="newly@oak.example", email_consent=True,
    )  # fmt: skip
    assert names(coordinators_north) == sorted([*before, "Newly Hired"])
    campaign = services.create_campaign(
        actor=world.lee, name="c", kind="newsletter", segment=coordinators_north, template=email_template()
    )
    services.prepare_send(campaign, actor=world.lee)
    assert Recipient.objects.filter(campaign=campaign, email="newly@oak.example").exists()


def test_a_deleted_territory_never_widens_a_segment(world, coordinators_north):
    outreach.delete_territory(world.north, actor="test")
    with pytest.raises(ValidationError, match="no longer exists"):
        segments.evaluate(coordinators_north)


def test_evaluating_a_segment_takes_a_fixed_number_of_queries(world, coordinators_north):
    with CaptureQueriesContext(connection) as small:
        segments.evaluate(coordinators_north)
    for i in range(5):
        practice = directory.create_practice(actor="test", name=f"Extra {i}")
        loc = directory.create_location(
            practice, actor="test", address_line1="2 Elm", city="Westerville", state="OH", zip_code="43081"
        )
        directory.create_contact(
            practice, actor="test", first_name=f"C{i}", role="referral_coordinator", location=loc
        )
    with CaptureQueriesContext(connection) as large:
        assert len(segments.evaluate(coordinators_north)) == 7
    assert len(large) == len(small)


def test_bad_criteria_are_refused_field_by_field(world):
    with pytest.raises(ValidationError) as exc:
        services.save_segment(
            None, actor=world.lee, name="x", audiences=["surgeons"], tiers=["Z"], specialties=["nope"],
            territories=[999999], touched_within_days=10, untouched_days=30,
        )  # fmt: skip
    assert set(exc.value.message_dict) == {
        "audiences",
        "tiers",
        "specialties",
        "territories",
        "untouched_days",
    }


# Merge fields ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    [
        "referral.patient_first_name",
        "patient.name",
        "recipient.contact.practice.referrals_sent",
        "referral.reason",
        "recipient.birthday",
        "recipient.personal_notes",
    ],
)
def test_patient_and_referral_fields_cannot_be_merged(world, field):
    with pytest.raises(ValidationError) as exc:
        email_template(body=f"Dear {{{{ {field} }}}}")
    assert field in str(exc.value)
    with pytest.raises(merge.MergeError):
        merge.render(f"{{{{ {field} }}}}", {field: "leak"}, escape=False)


def test_template_tags_and_patient_identifiers_are_refused(world):
    with pytest.raises(ValidationError, match="Template tags"):
        email_template(body="{% load static %}{% include 'x.html' %}")
    with pytest.raises(ValidationError, match="date of birth"):
        email_template(body="Please confirm the patient's DOB with us")


def test_the_allow_list_has_no_patient_field_and_building_the_values_reads_no_referral(world, newsletter):
    assert not [f for f in merge.MERGE_FIELDS if merge._PATIENTISH.search(f)]
    with CaptureQueriesContext(connection) as queries:
        members = segments.evaluate(newsletter.segment)
        values = [services.person_values(m) for m in members]
        services.campaign_values(newsletter)
    assert not [q for q in queries if "referrals_" in q["sql"]]
    assert all(set(v) <= set(merge.MERGE_FIELDS) for v in values)


def test_merged_values_are_escaped_in_html(world):
    content = Content(1, "newsletter", "Hi {{ recipient.first_name }}", "Hi {{ recipient.first_name }}",
                      "<p>Hi {{ recipient.first_name }}</p>", "a@b.example", "Us", "1 Main St", False)  # fmt: skip
    rendered = render(content, {"recipient.first_name": "<script>x</script>"}, pk=None)
    assert "&lt;script&gt;" in rendered.html and "<script>" not in rendered.html
    assert "<script>x</script>" in rendered.text


def test_the_preview_shows_one_recipient_with_their_merge_fields(world, newsletter, client_for):
    client = client_for("liaison")
    Campaign.objects.filter(pk=newsletter.pk).update(created_by=client.user)
    page = client.get(f"/campaigns/{newsletter.pk}/")
    assert page.status_code == 200 and b"Send now" in page.content
    preview = client.get(
        f"/campaigns/{newsletter.pk}/preview/?member=contact-{world.rita.pk}"
    ).content.decode()
    assert "News for Maple Family Medicine" in preview and "Dear Rita at Maple Family Medicine" in preview
    assert "#preview-link" in preview  # never a real recipient's link


def test_a_referring_provider_can_have_an_email_address_and_consent(world, client_for):
    from liaison.directory import services as directory_services

    assert world.family.email == "frank@maple.example" and world.family.email_consent_at is not None
    directory_services.update_provider(world.family, actor="test", email_consent=False)
    world.family.refresh_from_db()
    assert world.family.email_consent_at is None
    client = client_for("liaison")
    data = client.get(f"/api/v1/providers/{world.family.pk}").json()
    assert data["email"] == "frank@maple.example" and data["email_consent"] is False
    patched = client.patch(
        f"/api/v1/providers/{world.family.pk}", {"email_consent": True}, content_type="application/json"
    )
    assert patched.status_code == 200 and patched.json()["email_consent_at"]
