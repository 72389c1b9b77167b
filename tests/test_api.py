"""The REST API: auth (token, session + CSRF), roles, filters, pagination, one error format, no 500s."""

import json

import pytest
from django.test import Client

from liaison.accounts import services as accounts
from liaison.audit.models import AuditEvent
from liaison.directory.models import Contact, Location, Practice, Provider
from tests.conftest import ROLES, make_npi

WRITERS = ["admin", "manager", "liaison", "coordinator"]


@pytest.fixture
def api_for(make_user):
    def make(role: str) -> Client:
        user = make_user(role)
        _, raw = accounts.create_api_token(user, actor=user, name="tests")
        c = Client(headers={"Authorization": f"Bearer {raw}"})
        c.user = user
        return c

    return make


def post(c: Client, url: str, body) -> object:
    return c.post(
        url, json.dumps(body) if not isinstance(body, (bytes, str)) else body, content_type="application/json"
    )


def patch(c: Client, url: str, body) -> object:
    return c.patch(url, json.dumps(body), content_type="application/json")


def test_without_credentials_the_api_answers_401(db):
    response = Client().get("/api/v1/providers")
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication required: a valid API token or a signed-in session."}
    assert Client(headers={"Authorization": "Bearer lia_wrong"}).get("/api/v1/providers").status_code == 401


def test_the_openapi_schema_and_docs_are_served(client_for):
    c = client_for("analyst")
    schema = c.get("/api/v1/openapi.json").json()
    assert schema["info"]["title"] == "Liaison API"
    assert {"/api/v1/providers", "/api/v1/practices", "/api/v1/contacts", "/api/v1/locations"} <= set(
        schema["paths"]
    )
    docs = c.get("/api/v1/docs")
    assert docs.status_code == 200
    page = docs.content.decode()
    # Swagger UI comes with the app (the server may have no internet access), never from a CDN.
    assert "/static/ninja/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    for guess in ("/api/", "/api/docs"):
        assert c.get(guess).headers["Location"] == "/api/v1/docs"


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_the_directory(api_for, role, referring_provider):
    c = api_for(role)
    body = c.get("/api/v1/providers", {"q": "family"}).json()
    assert body["count"] == 1 and body["items"][0]["npi"] == referring_provider.npi
    assert body["items"][0]["primary_taxonomy"]["code"] == "207Q00000X"


def test_filters_and_pagination(api_for, site, referring_provider, far_provider):
    c = api_for("liaison")
    near = c.get("/api/v1/providers", {"radius_miles": 10, "ours": "false"}).json()
    assert [p["last_name"] for p in near["items"]] == ["Family"]
    assert near["items"][0]["distance_miles"] == pytest.approx(2.6, abs=0.3)
    assert c.get("/api/v1/providers", {"zip_code": "44114"}).json()["items"][0]["last_name"] == "Faraway"
    assert c.get("/api/v1/providers", {"specialty": "internal"}).json()["count"] == 1
    page = c.get("/api/v1/providers", {"page_size": 1, "page": 2}).json()
    assert page["count"] == 2 and len(page["items"]) == 1
    assert (
        c.get("/api/v1/practices", {"radius_miles": 10, "ours": "false"}).json()["items"][0]["name"]
        == "Maple Family Medicine"
    )
    assert c.get("/api/v1/sites").json()[0]["is_site"] is True


def test_create_and_update_through_the_api_are_audited(api_for, referring_location):
    c = api_for("liaison")
    response = post(
        c,
        "/api/v1/providers",
        {
            "first_name": "Nina",
            "last_name": "Nurse",
            "credential": "NP",
            "npi": make_npi(77),
            "primary_taxonomy": "363LF0000X",
            "location_ids": [referring_location.pk],
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (
        body["location_ids"] == [referring_location.pk] and body["primary_taxonomy"]["code"] == "363LF0000X"
    )
    response = patch(
        c, f"/api/v1/providers/{body['id']}", {"credential": "APRN", "secondary_taxonomies": ["363LA2200X"]}
    )
    assert response.status_code == 200 and response.json()["credential"] == "APRN"
    assert response.json()["npi"] == body["npi"]  # untouched
    actions = list(
        AuditEvent.objects.filter(object_type="directory.provider", object_id=str(body["id"])).values_list(
            "action", "actor"
        )
    )
    assert actions == [("update", c.user.pk), ("create", c.user.pk)]


def test_practices_locations_and_contacts_round_trip(api_for):
    c = api_for("manager")
    practice = post(c, "/api/v1/practices", {"name": "Api Pediatrics"}).json()
    location = post(
        c,
        "/api/v1/locations",
        {
            "practice_id": practice["id"],
            "address_line1": "1 A St",
            "city": "Columbus",
            "state": "OH",
            "zip_code": "43215",
            "lunch_best_days": ["wed"],
            "lunch_head_count": 9,
        },
    )
    assert location.status_code == 201, location.content
    assert location.json()["latitude"] is not None
    contact = post(
        c,
        "/api/v1/contacts",
        {
            "practice_id": practice["id"],
            "location_id": location.json()["id"],
            "first_name": "Rae",
            "role": "referral_coordinator",
            "influence": "decides",
            "email": "rae@api.example",
            "email_consent": True,
        },
    )
    assert contact.status_code == 201, contact.content
    assert contact.json()["email_consent_at"] is not None
    assert (
        patch(c, f"/api/v1/practices/{practice['id']}", {"website": "https://api.example"}).json()["website"]
        == "https://api.example"
    )
    assert c.get(f"/api/v1/practices/{practice['id']}").json()["locations"][0]["lunch_head_count"] == 9
    assert c.get("/api/v1/contacts", {"role": "referral_coordinator"}).json()["count"] == 1


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"first_name": "A", "last_name": "B", "npi": "1234567890"}, "npi", "check digit"),
        (
            {"first_name": "A", "last_name": "B", "primary_taxonomy": "123400000X"},
            "primary_taxonomy",
            "Unknown taxonomy code",
        ),
        (
            {"first_name": "A", "last_name": "B", "location_ids": [999999]},
            "location_ids",
            "Unknown location id",
        ),
        ({"last_name": "B"}, "first_name", "Field required"),
        ({"first_name": "A", "last_name": "B" * 500}, "last_name", "at most 80 characters"),
        ({"first_name": "A", "last_name": "B", "gender": "Q"}, "gender", "not a valid choice"),
    ],
)
def test_bad_provider_input_gets_400_with_field_errors_and_saves_nothing(api_for, body, field, message):
    c = api_for("coordinator")
    response = post(c, "/api/v1/providers", body)
    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert field in errors and message in " ".join(errors[field])
    assert not Provider.objects.exists()


def test_a_malformed_zip_gets_400_and_no_location(api_for, referring_practice):
    response = post(
        api_for("liaison"),
        "/api/v1/locations",
        {
            "practice_id": referring_practice.pk,
            "address_line1": "1 A",
            "city": "X",
            "state": "OH",
            "zip_code": "12-34",
        },
    )
    assert response.status_code == 400
    assert "is not a ZIP code" in response.json()["errors"]["zip_code"][0]
    assert not Location.objects.exists()


@pytest.mark.parametrize("role", ["physician", "analyst"])
def test_read_only_roles_get_403_on_every_write(
    api_for, role, referring_provider, referring_practice, referring_location
):
    c = api_for(role)
    contact = Contact.objects.create(practice=referring_practice, first_name="K")
    writes = [
        post(c, "/api/v1/practices", {"name": "X"}),
        patch(c, f"/api/v1/practices/{referring_practice.pk}", {"name": "X"}),
        post(
            c,
            "/api/v1/locations",
            {
                "practice_id": referring_practice.pk,
                "address_line1": "1",
                "city": "C",
                "state": "OH",
                "zip_code": "43215",
            },
        ),
        patch(c, f"/api/v1/locations/{referring_location.pk}", {"city": "X"}),
        post(c, "/api/v1/providers", {"first_name": "X", "last_name": "Y"}),
        patch(c, f"/api/v1/providers/{referring_provider.pk}", {"first_name": "X"}),
        post(c, "/api/v1/contacts", {"practice_id": referring_practice.pk, "first_name": "X"}),
        patch(c, f"/api/v1/contacts/{contact.pk}", {"first_name": "X"}),
    ]
    assert [r.status_code for r in writes] == [403] * len(writes)
    assert writes[0].json() == {"detail": "Your role does not allow this."}
    assert Practice.objects.count() == 1 and Provider.objects.get().first_name == "Frank"


def test_session_auth_needs_the_csrf_token_for_writes(make_user):
    user = make_user("liaison")
    c = Client(enforce_csrf_checks=True)
    c.force_login(user)
    assert c.get("/api/v1/practices").status_code == 200
    refused = c.post("/api/v1/practices", json.dumps({"name": "X"}), content_type="application/json")
    assert refused.status_code == 403
    c.get("/accounts/tokens/")  # any page sets the CSRF cookie
    token = c.cookies["csrftoken"].value
    ok = c.post(
        "/api/v1/practices",
        json.dumps({"name": "X"}),
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    assert ok.status_code == 201


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("get", "/api/v1/providers/99999999999999999999999", None),
        ("get", "/api/v1/providers/-1", None),
        ("get", "/api/v1/providers/abc", None),
        ("get", "/api/v1/providers?radius_miles=nan", None),
        ("get", "/api/v1/providers?radius_miles=-5", None),
        ("get", "/api/v1/providers?near_site=5", None),
        ("get", "/api/v1/providers?page=0", None),
        ("get", "/api/v1/providers?q=%00", None),
        ("get", "/api/v1/providers?ours=maybe", None),
        ("post", "/api/v1/providers", b"{not json"),
        ("post", "/api/v1/providers", b"[]"),
        ("post", "/api/v1/providers", b'{"first_name": "A\\u0000", "last_name": "B"}'),
        ("post", "/api/v1/providers", b'{"first_name": 5, "last_name": ["x"]}'),
        (
            "post",
            "/api/v1/locations",
            b'{"practice_id": 99999999999999999999, "address_line1": "a", "city": "b", "state": "OH", "zip_code": "43215"}',
        ),
        ("post", "/api/v1/contacts", b'{"practice_id": 1, "first_name": "A", "birthday": "1999-02-31"}'),
        ("patch", "/api/v1/providers/1", b'{"location_ids": "x"}'),
    ],
)
def test_malformed_input_never_gets_a_500(api_for, site, method, url, body):
    c = api_for("admin")
    if body is None:
        response = getattr(c, method)(url)
    else:
        response = getattr(c, method)(url, body, content_type="application/json")
    assert response.status_code in (400, 404, 405), (response.status_code, response.content)
    assert "detail" in response.json()


def test_not_found_has_the_same_shape(api_for):
    response = api_for("liaison").get("/api/v1/practices/12345")
    assert response.status_code == 404 and response.json() == {"detail": "Not found."}


def test_provider_list_query_count_is_fixed(api_for, referring_location, django_assert_num_queries):
    c = api_for("liaison")
    for i in range(3):
        post(
            c,
            "/api/v1/providers",
            {
                "first_name": "A",
                "last_name": f"L{i}",
                "location_ids": [referring_location.pk],
                "secondary_taxonomies": ["207R00000X"],
            },
        )
    with django_assert_num_queries(5):
        c.get("/api/v1/providers")
    for i in range(10):
        post(
            c,
            "/api/v1/providers",
            {"first_name": "B", "last_name": f"M{i}", "location_ids": [referring_location.pk]},
        )
    with django_assert_num_queries(5):
        assert c.get("/api/v1/providers").json()["count"] == 13
