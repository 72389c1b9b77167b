"""The analytics pages: figures from the refresh job, drill-down, exports, alerts on accounts, roles."""

import csv
import io
import re

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from liaison.analytics.models import CoolingAlert, RefreshRun, VolumeCell
from liaison.analytics.refresh import refresh
from liaison.analytics.tasks import digest_for
from liaison.audit.models import AuditEvent
from liaison.outreach.models import Account, Stage, Task, Trend
from liaison.referrals.models import Referral
from tests.analytics.conftest import AS_OF, PATIENT

PHI_VALUES = [PATIENT["patient_last_name"], PATIENT["patient_mrn"], PATIENT["member_id"], "Hist", "Patient1"]


def assert_no_phi(text: str) -> None:
    for value in PHI_VALUES:
        assert value not in text


@pytest.fixture
def refreshed(network):
    refresh(as_of=AS_OF)
    return network


def test_refresh_counts_every_referral_once_in_the_monthly_rollup(refreshed):
    total = sum(VolumeCell.objects.filter(grain="month").values_list("referrals", flat=True))
    assert total == Referral.objects.count()
    run = RefreshRun.objects.get()
    assert run.status == "done" and run.referrals == total and run.seconds is not None


def test_a_referrer_that_stopped_is_flagged_with_an_explanation_and_its_account_goes_at_risk(refreshed):
    alert = CoolingAlert.objects.get()
    family = refreshed["family"]
    assert alert.provider == family and alert.is_open
    assert "Family" in alert.explanation and alert.p_value < 0.01
    assert alert.recent_count == 0 and alert.baseline_per_month > 3
    account = Account.objects.get(pk=refreshed["maple"].pk)
    assert account.stage == Stage.AT_RISK and account.trend == Trend.COOLING
    change = account.stage_changes.order_by("-at", "-pk").first()
    assert change.actor_label == "analytics" and "Family" in change.reason
    task = Task.objects.get(account=account)
    assert task.assignee == refreshed["liaison"] and alert.task == task
    # The steady referrer is not flagged, and a second run on the same day changes nothing.
    refresh(as_of=AS_OF)
    assert CoolingAlert.objects.count() == 1 and Task.objects.filter(account=account).count() == 1
    assert AuditEvent.objects.filter(action="open_cooling_alert").count() == 1


def test_each_referrers_share_to_us_comes_from_the_shared_patients_and_is_unknown_when_unpublished(
    network, site, client_for
):
    from liaison.analytics.models import ReferrerStat
    from liaison.marketdata.models import Opportunity

    def scored(provider, us, them):
        Opportunity.objects.create(
            provider=provider,
            nearest_site=site,
            distance_miles=2.0,
            score=50.0,
            explanation="-",
            shared_with_us=us,
            shared_with_competitors=them,
        )

    steady = Referral.objects.filter(referring_provider__last_name="Steady").first().referring_provider
    scored(steady, 40, 10)
    scored(network["family"], 0, 90)  # it sent us ~6 a month: its pairs with ours were not published
    refresh(as_of=AS_OF)
    stats = {s.provider_id: s for s in ReferrerStat.objects.all()}
    assert (stats[steady.pk].share_with_us, stats[steady.pk].loyalty) == (0.8, "loyal")
    assert (stats[network["family"].pk].share_with_us, stats[network["family"].pk].loyalty) == (None, "")
    c = client_for("manager")
    page = c.get(reverse("analytics:referrer", args=[steady.pk])).content.decode()
    assert "Sends us 80% of the patients it shares with our specialty (loyal)." in page
    assert (
        "Sends us" not in c.get(reverse("analytics:referrer", args=[network["family"].pk])).content.decode()
    )


def test_cadence_kept_counts_touches_done_by_their_day_and_not_those_due_today_still_open(network):
    import datetime as dt

    from liaison.analytics.selectors import snapshot
    from liaison.outreach import services as outreach

    liaison, account = network["liaison"], Account.objects.get(pk=network["maple"].pk)

    def cadence(days_ago, done_days_later=None):
        task = outreach.create_task(
            actor="test",
            title="Visit",
            due_on=AS_OF - dt.timedelta(days=days_ago),
            assignee=liaison,
            account=account,
            kind="cadence",
            cadence_touch=f"t{days_ago}-{done_days_later}",  # one open task per touch
        )
        if done_days_later is not None:
            outreach.complete_task(task, actor=liaison)
            done = dt.datetime.combine(task.due_on + dt.timedelta(days=done_days_later), dt.time(16))
            Task.objects.filter(pk=task.pk).update(done_at=timezone.make_aware(done))

    cadence(10, done_days_later=0)  # kept
    cadence(8, done_days_later=2)  # done late
    cadence(3)  # missed
    cadence(0)  # due today, not done yet: not late
    cadence(0, done_days_later=0)  # due today and done: kept
    refresh(as_of=AS_OF)
    row = next(r for r in snapshot("kpis")["liaisons"] if r["user"] == liaison.pk)
    assert (row["cadence_kept"], row["cadence_due"]) == (2, 4)


def test_the_alert_clears_and_the_account_recovers_when_referrals_come_back(refreshed):
    import datetime as dt

    from tests.analytics.conftest import bulk_history

    family, net = refreshed["family"], refreshed
    days = [
        AS_OF + dt.timedelta(days=d) for d in range(1, 60) if (AS_OF + dt.timedelta(days=d)).weekday() < 5
    ]
    site = Referral.objects.filter(referring_provider=family).first().site
    bulk_history(
        family,
        family.locations.first(),
        site,
        site and Referral.objects.first().referred_to_physician,
        net["service_line"],
        days[::2] + days[::3],
    )
    refresh(as_of=AS_OF + dt.timedelta(days=60))
    alert = CoolingAlert.objects.get(provider=family)
    assert alert.cleared_on == AS_OF + dt.timedelta(days=60)
    assert Account.objects.get(pk=net["maple"].pk).stage == Stage.REFERRING


def test_manager_dashboard_shows_the_alert_and_links_each_number_to_its_referrals(refreshed, client_for):
    c = client_for("manager")
    page = c.get("/analytics/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Family" in html and "Cooling off" in html and "averaged" in html
    # What is being done about it, and how long the referrer has been quiet.
    alert = CoolingAlert.objects.get()
    section = html.split('id="table-cooling_alerts"')[1].split("</section>")[0]
    assert "Last referral" in section and "Alert since" in section
    assert f"open, due {alert.task.due_on:%b %-d, %Y}" in section
    assert alert.account.owner.full_name in section
    assert_no_phi(html)
    links = re.findall(r'href="(/analytics/referrals/\?[^"]+)"', html)
    assert links
    drill = c.get(links[-1].replace("&amp;", "&"))
    assert drill.status_code == 200 and b"/referrals/" in drill.content  # numbers link to the referral


def test_the_drilldown_total_matches_the_number_it_came_from(refreshed, client_for):
    c = client_for("liaison")
    month = f"{AS_OF.replace(day=1).replace(month=AS_OF.month - 2):%Y-%m}"
    cell = sum(
        VolumeCell.objects.filter(grain="month", period=f"{month}-01").values_list("referrals", flat=True)
    )
    page = c.get(f"/analytics/referrals/?grain=month&period={month}-01")
    assert page.status_code == 200
    assert f"{cell} referral".encode() in page.content


def test_each_referrer_count_links_to_exactly_that_many_referrals(refreshed, client_for):
    c = client_for("manager")
    html = c.get("/analytics/").content.decode()
    followed = 0
    for table in ("top_referrers", "new_referrers", "lapsed_referrers", "by_site"):
        section = html.split(f'id="table-{table}"')[1].split("</section>")[0] if table in html else ""
        for link, number in re.findall(r'<a href="(/analytics/referrals/\?[^"]+)">(\d+)</a>', section):
            page = c.get(link.replace("&amp;", "&")).content.decode()
            assert f"{number} referral" in page, (table, link)
            followed += 1
    # Dr. Family stopped 100 days before the refresh: a window counted back from the last referral
    # instead of from the refresh would list more than the 12 months' count.
    assert followed >= 5


def test_a_liaison_sees_the_same_counts_without_any_patient_field_or_referral_number(refreshed, client_for):
    manager, liaison = client_for("manager"), client_for("liaison", email="l2@example.org")
    m = manager.get("/analytics/?export=csv&table=volume").content
    l_ = liaison.get("/analytics/?export=csv&table=volume").content
    assert m == l_
    drill = liaison.get(f"/analytics/referrals/?provider={refreshed['steady'].pk}").content.decode()
    assert_no_phi(drill)
    assert "/referrals/" not in re.sub(r"/analytics/referrals/", "", drill)
    assert not re.search(r"\d{4}-\d{2}-\d{2}</td>", drill)  # months only, no exact date
    # No payer either: with the month, the referrer and the service line it could point at a patient.
    assert "Payer" not in drill and "Aetna" not in drill
    assert (
        "Aetna"
        not in liaison.get(
            f"/analytics/referrals/?provider={refreshed['steady'].pk}&export=csv&table=referrals"
        ).content.decode()
    )


def test_exports_are_de_identified_csv_and_xlsx(refreshed, client_for):
    c = client_for("manager")
    base = f"/analytics/referrals/?provider={refreshed['steady'].pk}"
    response = c.get(base + "&export=csv&table=referrals")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][0] == "Month received" and len(rows) > 20
    assert_no_phi(response.content.decode())
    # A manager's export: by month, no referral number or exact date (the file leaves the system).
    assert "Referral" not in rows[0]
    assert not any(re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) for row in rows for value in row)
    xlsx = c.get(base + "&export=xlsx&table=referrals")
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet.cell(row=1, column=1).value == "Month received"
    assert c.get("/analytics/?export=pdf&table=volume").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/analytics/",
        "/analytics/referrals/",
        "/analytics/leakage/",
        "/analytics/attribution/",
        "/analytics/reciprocity/",
    ],
)
def test_physicians_are_kept_out_of_the_network_figures(refreshed, client_for, path):
    assert client_for("physician").get(path).status_code == 403


@pytest.mark.parametrize("role", ["analyst", "coordinator", "admin"])
def test_other_roles_read_the_pages_without_patient_data(refreshed, client_for, role):
    c = client_for(role)
    for path in (
        "/analytics/",
        "/analytics/leakage/",
        "/analytics/attribution/",
        "/analytics/kpis/",
        "/analytics/reciprocity/",
    ):
        page = c.get(path)
        assert page.status_code == 200, path
        assert_no_phi(page.content.decode())


def test_only_managers_and_admins_start_a_refresh(network, client_for, django_capture_on_commit_callbacks):
    assert client_for("liaison").post("/analytics/refresh/").status_code == 403
    manager = client_for("manager", email="m@example.org")
    with django_capture_on_commit_callbacks(execute=True):
        response = manager.post("/analytics/refresh/")
    assert response.status_code == 302 and "/jobs/" in response["Location"]
    assert RefreshRun.objects.filter(status="done").exists()  # the test settings run jobs at once
    job = manager.get(response["Location"]).content.decode()
    assert "Cooling alerts opened" in job and "_" not in re.sub(r"<[^>]+>", "", job.split("<main")[-1])


def test_list_pages_do_a_fixed_number_of_queries(refreshed, client_for):
    c = client_for("manager")
    counts = {}
    for path in ("/analytics/", f"/analytics/referrals/?provider={refreshed['steady'].pk}"):
        with CaptureQueriesContext(connection) as q:
            assert c.get(path).status_code == 200
        counts[path] = len(q)
    assert counts["/analytics/"] <= 25
    assert counts[f"/analytics/referrals/?provider={refreshed['steady'].pk}"] <= 12


def test_api_gives_the_alerts_to_analysts_and_refuses_physicians(refreshed, make_user):
    from django.test import Client

    from liaison.accounts import services as accounts

    def api(role):
        user = make_user(role, email=f"{role}-api@example.org")
        _, raw = accounts.create_api_token(user, actor=user, name="tests")
        return Client(headers={"Authorization": f"Bearer {raw}"})

    analyst = api("analyst").get("/api/v1/analytics/cooling-alerts")
    assert analyst.status_code == 200 and analyst.json()[0]["referrer_id"] == refreshed["family"].pk
    assert api("physician").get("/api/v1/analytics/cooling-alerts").status_code == 403
    volume = api("liaison").get("/api/v1/analytics/volume?grain=week").json()
    assert volume["grain"] == "week" and len(volume["rows"]) == 26
    assert_no_phi(str(volume))


def test_weekly_digest_tells_the_liaison_about_their_cooling_account_without_patient_data(refreshed):
    message = digest_for(refreshed["liaison"])
    assert message is not None and "Family" in message.body and "LIAISONS" in message.body
    assert_no_phi(message.body)
    message.send()
    assert len(mail.outbox) == 1


def test_the_refresh_and_digest_commands(network, capsys):
    from django.core.management import call_command

    call_command("analytics", "refresh", "--as-of", AS_OF.isoformat())
    out = capsys.readouterr().out
    assert f"analytics as of {AS_OF}" in out and "1 cooling alerts opened" in out
    call_command("analytics", "digest", "--dry-run")
    out = capsys.readouterr().out
    assert "To: lee@example.org" in out and "Family averaged" in out and "1 digest printed" in out
    assert_no_phi(out)
    assert not mail.outbox


def test_nonsense_filters_give_a_page_not_an_error(refreshed, client_for):
    c = client_for("manager")
    for query in ("site=99999999999999999999999", "period=2026-13-40&grain=month", "page=zz", "outcome=<x>"):
        assert c.get(f"/analytics/referrals/?{query}").status_code == 200, query
    assert c.get("/analytics/?months=abc&grain=year&site=-1").status_code == 200
    assert c.get("/api/v1/analytics/volume?site=99999999999999999999999").status_code == 400  # docs/api.md


def test_the_attribution_page_says_its_period_and_what_its_costs_cover(refreshed, client_for):
    from liaison.analytics.models import Snapshot

    html = client_for("manager").get("/analytics/attribution/").content.decode()
    assert "Episodes starting " in html and "Rows do not add up to" in html
    assert "an activity kind&#x27;s row" in html and "a activity" not in html
    # A kind of touch with no cost recorded has no cost per referral (not "0").
    data = Snapshot.objects.get(name="attribution").data
    row = {**data["kind"]["overall"], "group": "visit", "cost": 0.0, "cost_per_incremental": 0.0}
    data["kind"]["rows"] = [row]
    Snapshot.objects.filter(name="attribution").update(data=data)
    html = client_for("manager", email="m2@example.org").get("/analytics/attribution/").content.decode()
    assert "no cost recorded" in html


def test_office_informed_within_a_day_counts_a_letter_when_it_was_faxed(
    network, make_user, referring_provider, site, our_physician
):
    import datetime as dt

    from liaison.analytics.selectors import snapshot
    from liaison.referrals import services as referrals
    from liaison.referrals.models import Notification
    from liaison.referrals.notifications import notify
    from tests.analytics.conftest import at

    coordinator = make_user("coordinator", email="kpi-coordinator@example.org")
    end = at(AS_OF + dt.timedelta(days=1), 0)

    def letter(received, faxed_after_hours=None):
        referral = referrals.receive_referral(
            actor="test",
            referrer=referrals.ReferrerInfo(npi=referring_provider.npi),
            received_at=received,
            assigned_to=coordinator,
            site=site,
            referred_to_physician=our_physician,
            **PATIENT,
        )
        notification = notify(referral.events.get(to_status="received"))
        if faxed_after_hours is not None:
            referrals.mark_letter_sent(
                notification, actor=coordinator, at=received + dt.timedelta(hours=faxed_after_hours)
            )
        return notification

    letter(end - dt.timedelta(days=6), faxed_after_hours=2)  # within the day
    letter(end - dt.timedelta(days=5), faxed_after_hours=30)  # late
    letter(end - dt.timedelta(days=4))  # never faxed: late
    letter(end - dt.timedelta(hours=3))  # not faxed yet, but not a day old: not judged yet
    assert Notification.objects.filter(outcome="ready").count() == 2
    refresh(as_of=AS_OF)
    row = next(r for r in snapshot("kpis")["coordinators"] if r["user"] == coordinator.pk)
    assert row["notified"] == 3 and row["notify_within_day"] == pytest.approx(1 / 3)


def test_the_dashboard_marks_the_month_in_progress_and_says_which_tables_a_filter_skips(
    refreshed, client_for
):
    c = client_for("manager")
    html = c.get("/analytics/").content.decode()
    assert f"{AS_OF:%Y-%m}*" in html and "The last month is partial, to Jun 15, 2026" in html
    assert "applies to the chart and the split" not in html
    filtered = c.get("/analytics/", {"payer": "Aetna"}).content.decode()
    top = filtered.split('id="table-top_referrers"')[1].split("</section>")[0]
    assert "The “Payer” filter above applies to the chart and the split, not to these referrers" in top
