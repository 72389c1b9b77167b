"""Field rules: NPI check digit, ZIP codes and their centroids, taxonomy codes, phone numbers."""

import pytest
from django.core.exceptions import ValidationError

from liaison.core.geo import haversine_miles, normalize_zip, zip_info
from liaison.directory import services
from liaison.directory.models import Location, Practice, Provider
from liaison.directory.validators import normalize_phone, npi_check_digit_ok, validate_npi
from tests.conftest import make_npi


@pytest.mark.parametrize("npi", ["1234567893", "1245319599", "1003000126"])
def test_real_format_npis_pass_the_check_digit(npi):
    assert npi_check_digit_ok(npi)
    validate_npi(npi)


@pytest.mark.parametrize(
    ("npi", "message"),
    [
        ("1234567890", "check digit"),
        ("123456789", "10 digits"),
        ("3234567893", "starting with 1 or 2"),
        ("12345abcde", "10 digits"),
        ("1234567893\n", "10 digits"),
        ("1٢٣٤٥٦٧٨٩٣", "10 digits"),  # Arabic-Indic digits, which \d takes
    ],
)
def test_a_bad_npi_is_refused_with_the_reason(npi, message):
    with pytest.raises(ValidationError) as exc:
        validate_npi(npi)
    assert message in str(exc.value)


def test_zip_codes_are_normalised_and_located():
    assert normalize_zip("43215") == "43215"
    assert normalize_zip("43215-1234") == "43215-1234"
    assert normalize_zip("432151234") == "43215-1234"
    assert normalize_zip("4321") is None
    info = zip_info("43215")
    assert info.state == "OH" and info.city == "Columbus"
    assert haversine_miles(info.latitude, info.longitude, *_centroid("43081")) == pytest.approx(12.5, abs=2)


def test_the_zip_table_is_copied_from_zipcodes_once_and_made_again_if_damaged(settings, tmp_path):
    import zipcodes

    from liaison.core import geo

    settings.VAR_DIR = tmp_path
    copy = tmp_path / "cache" / f"zipcodes-{zipcodes.__version__}.tsv"
    geo.zip_table.cache_clear()
    try:
        table = geo.zip_table()
        assert copy.exists() and len(table) > 40_000
        assert table["43215"] == geo.ZipInfo("43215", "Columbus", "OH", "Franklin County", 39.9671, -83.0044)
        geo.zip_table.cache_clear()
        assert geo.zip_table() == table  # read back from the copy
        copy.write_text("43215\tColumbus\tOH\n")  # cut short
        geo.zip_table.cache_clear()
        assert geo.zip_table() == table
        assert geo.zips_near([(table["43215"].latitude, table["43215"].longitude)], 3) == sorted(
            z for z, i in table.items() if haversine_miles(i.latitude, i.longitude, 39.9671, -83.0044) <= 3
        )
    finally:
        geo.zip_table.cache_clear()


def test_zip_codes_are_found_even_where_the_table_cannot_be_kept(settings, tmp_path):
    from liaison.core import geo

    (tmp_path / "cache").write_text("a file where the folder would go")
    settings.VAR_DIR = tmp_path
    geo.zip_table.cache_clear()
    try:
        assert zip_info("43215").city == "Columbus"
    finally:
        geo.zip_table.cache_clear()


def _centroid(z):
    info = zip_info(z)
    return info.latitude, info.longitude


@pytest.mark.parametrize(
    ("value", "expected"),
    [("614-555-0100", "(614) 555-0100"), ("+1 614 555 0100 ext. 12", "(614) 555-0100 x12"), ("", "")],
)
def test_phone_numbers_are_formatted(value, expected):
    assert normalize_phone(value) == expected


def test_a_short_phone_number_is_refused():
    with pytest.raises(ValidationError):
        normalize_phone("555-0100")


def test_location_gets_coordinates_and_county_from_its_zip(referring_practice):
    loc = services.create_location(
        referring_practice,
        actor="test",
        address_line1="1 A St",
        city="Columbus",
        state="OH",
        zip_code="43215-0001",
    )
    assert loc.latitude == pytest.approx(39.96, abs=0.05)
    assert loc.longitude == pytest.approx(-83.0, abs=0.05)
    assert loc.county == "Franklin County"
    assert loc.zip_code == "43215-0001"


@pytest.mark.parametrize(
    ("zip_code", "state", "message"),
    [
        ("4321", "OH", "is not a ZIP code"),
        ("ABCDE", "OH", "is not a ZIP code"),
        ("00000", "OH", "not a known US ZIP code"),
        ("43215", "CA", "is in OH, not CA"),
    ],
)
def test_a_bad_zip_is_refused_and_nothing_is_saved(referring_practice, zip_code, state, message):
    with pytest.raises(ValidationError) as exc:
        services.create_location(
            referring_practice, actor="test", address_line1="1 A St", city="X", state=state, zip_code=zip_code
        )
    assert message in " ".join(exc.value.message_dict["zip_code"])
    assert not Location.objects.exists()


def test_an_unknown_taxonomy_code_is_refused_and_nothing_is_saved(db):
    with pytest.raises(ValidationError) as exc:
        services.create_provider(
            actor="test", first_name="A", last_name="B", npi=make_npi(10), primary_taxonomy_code="999X00000X"
        )
    assert "Unknown taxonomy code 999X00000X" in exc.value.message_dict["primary_taxonomy"][0]
    assert not Provider.objects.exists()


def test_a_malformed_taxonomy_code_is_named(db):
    with pytest.raises(ValidationError) as exc:
        services.create_provider(
            actor="test", first_name="A", last_name="B", secondary_taxonomy_codes=["cardio"]
        )
    assert "CARDIO is not a NUCC taxonomy code" in exc.value.message_dict["secondary_taxonomies"][0]


def test_two_providers_cannot_share_an_npi(referring_provider):
    with pytest.raises(ValidationError) as exc:
        services.create_provider(
            actor="test", first_name="Other", last_name="Person", npi=referring_provider.npi
        )
    assert exc.value.message_dict["npi"] == ["Another provider in the directory already has this NPI."]


def test_providers_without_npi_may_coexist(db):
    services.create_provider(actor="test", first_name="A", last_name="One")
    services.create_provider(actor="test", first_name="B", last_name="Two")
    assert Provider.objects.filter(npi="").count() == 2


def test_our_physicians_must_practise_at_our_sites(referring_location):
    with pytest.raises(ValidationError) as exc:
        services.create_provider(
            actor="test", first_name="A", last_name="B", is_ours=True, locations=[referring_location]
        )
    assert "our locations" in exc.value.message_dict["locations"][0]


def test_a_practice_and_its_first_office_are_saved_together_or_not_at_all(db):
    with pytest.raises(ValidationError) as exc:
        services.create_practice_with_location(
            actor="test",
            practice={"name": "New Practice", "organization_npi": "1234567890"},
            location={"address_line1": "1 A St", "city": "Columbus", "state": "OH", "zip_code": "999"},
        )
    assert "organization_npi" in exc.value.message_dict
    assert "location.zip_code" in exc.value.message_dict
    assert not Practice.objects.exists() and not Location.objects.exists()


def test_mid_levels_are_recognised_from_their_taxonomy(db):
    np = services.create_provider(
        actor="test", first_name="N", last_name="P", primary_taxonomy_code="363LF0000X"
    )
    md = services.create_provider(
        actor="test", first_name="M", last_name="D", primary_taxonomy_code="207Q00000X"
    )
    assert np.is_mid_level and not md.is_mid_level
