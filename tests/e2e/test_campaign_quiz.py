"""A liaison builds a segment of the referral coordinators of one territory, writes a quiz,
previews the email as one of them, sends it through a real SMTP server; a coordinator opens
their link from the email and answers; the liaison closes the quiz and sees the winner."""

import re

import pytest
from playwright.sync_api import expect

from liaison.campaigns import services
from tests.campaigns.conftest import build_world
from tests.campaigns.smtp import SmtpServer
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def world(site, our_physician):
    services.ensure_starter_templates()  # the browser tests flush the database, migrations' data included
    return build_world(our_physician)


@pytest.fixture
def smtp(settings, live_server):
    with SmtpServer() as server:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
        settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.LIAISON_CAMPAIGN_RATE = 0
        settings.LIAISON_CAMPAIGN_FROM = "Test Orthopaedics <relations@ortho.example>"
        settings.LIAISON_BASE_URL = live_server.url
        yield server.recorder


def test_a_liaison_sends_a_quiz_to_the_coordinators_of_a_territory_and_sees_the_winner(
    page, browser, live_server, world, smtp
):
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill("lee@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Campaigns", exact=True).first.click()

    # The segment: referral coordinators in North.
    page.get_by_role("link", name="Segments").click()
    page.get_by_role("button", name="New segment").click()
    page.get_by_label("Name").fill("North coordinators")
    page.get_by_label("Referral coordinators").check()
    page.get_by_label("North").check()
    page.get_by_role("button", name="Save and see who is in it").click()
    members = page.locator("#members")
    expect(members).to_contain_text("Ralph Referral")
    expect(members).to_contain_text("Rhonda Referral")
    expect(members).not_to_contain_text("Rita Referral")  # Central
    expect(page.locator("#segment-count")).to_contain_text("2 people")

    # The quiz campaign, from the segment.
    page.get_by_role("button", name="New campaign").click()
    page.get_by_label("Name").fill("Knee quiz")
    page.get_by_label("Quiz", exact=True).check()
    page.get_by_label("Template").select_option(label="Quiz of the month (email)")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Quiz: Knee quiz")
    page.get_by_label("Prize").fill("a coffee for the office")
    page.get_by_label("Question 1").fill("Which joint is the largest?")
    page.locator("#id_q1_choices").fill("Knee\nElbow\nWrist")
    page.locator("#id_q1_correct").fill("1")
    page.get_by_label("Question 2").fill("What does ACL stand for?")
    page.locator("#id_q2_choices").fill("Arm and collar link\nAnterior cruciate ligament")
    page.locator("#id_q2_correct").fill("2")
    page.get_by_role("button", name="Save the quiz").click()
    expect(page.locator(".messages")).to_contain_text("Quiz saved")

    # Preview as Ralph, once the preview the page loads (the first member's) is in: otherwise that
    # request, answered after Ralph's on a busy machine, would replace his preview.
    preview = page.locator("#email-preview")
    expect(preview).to_be_visible()
    page.get_by_label("As received by").select_option(
        label="Ralph Referral · Referral coordinators · Oak Pediatrics"
    )
    expect(preview).to_contain_text("Ralph Referral <ralph@oak.example>")
    expect(page.locator("#preview-subject")).to_have_text(
        "Three questions for Oak Pediatrics: a coffee for the office"
    )
    frame = page.frame_locator("iframe.html-preview")
    expect(frame.locator("body")).to_contain_text("Hello Ralph")
    expect(frame.locator("body")).to_contain_text("Unsubscribe with one click")

    # Send.
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Send now").click()
    expect(page.locator(".job")).to_contain_text("Succeeded")
    expect(page.locator(".job")).to_contain_text("2 sent")
    assert sorted(a for m in smtp.messages for a in m.rcpt_tos) == [
        "ralph@oak.example",
        "rhonda@birch.example",
    ]
    [mail] = smtp.to("ralph@oak.example")
    assert mail.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = re.search(r"(http://[^\s]+/c/q/[^/\s]+/)", mail.part("plain")).group(1)

    # Ralph answers from his email, in his own browser.
    recipient = browser.new_context(base_url=live_server.url)
    ralph = recipient.new_page()
    ralph.goto(link)
    expect(ralph.get_by_role("heading", level=1)).to_have_text("Knee quiz")
    ralph.get_by_label("Knee").check()
    ralph.get_by_label("Anterior cruciate ligament").check()
    ralph.get_by_role("button", name="Send my answers").click()
    expect(ralph.locator("#score")).to_contain_text("You got 2 of 2 right: all correct")
    recipient.close()

    # The liaison closes the quiz and draws the winner.
    page.goto("/campaigns/")
    page.get_by_role("link", name="Knee quiz").click()
    expect(page.locator("#answers")).to_have_text("1")
    page.get_by_role("button", name="Close the quiz and draw the winner").click()
    expect(page.locator(".messages")).to_contain_text("The winner is Ralph Referral")
    expect(page.locator("#winner")).to_contain_text("Ralph Referral, Oak Pediatrics")
