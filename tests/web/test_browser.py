"""The console and the public site in a real browser: headless Chromium (Debian's `chromium`)
driven by Playwright, against the real app, Celery workers, Redis and the provider sandbox.

An author signs in and composes a closure notice, an approver signs in and approves it, the
message page follows delivery to `sent`, and the public page and feeds show the alert. Each step
leaves a screenshot under the test's temporary directory (`screenshots/`). Another test uses the
pages from the keyboard alone and measures the text's contrast (WCAG 2.1 AA).
"""

from __future__ import annotations

import json

import pytest
import requests
from playwright.sync_api import expect

from tests.browser import (  # noqa: F401 (browser: the fixture)
    PASSWORD,
    Steps,
    assert_text_contrast,
    browser,
    sign_in,
    sign_out,
)
from tests.public_site import PAYLOAD, closure


@pytest.fixture
def people(run, tokens, tmp_path):
    """ana (author) and ben (approver) with console passwords; two families' phones."""
    for name in ("ana", "ben"):
        result = run("users", "passwd", name, input=f"{PASSWORD}\n{PASSWORD}\n", token=tokens[name])
        assert result.exit_code == 0, result.output
    admin = run.json("users", "add", "it")["token"]
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(
        "phone,language,schools\n+14155550100,en,lincoln-hs\n+14155550101,es,jefferson-es\n",
        encoding="utf-8",
    )
    run.json("contacts", "import", str(contacts), "--as", "it", token=admin)


def test_author_composes_approver_approves_and_the_public_sees_it(
    stack,
    site,
    people,
    browser,  # noqa: F811 (the fixture)
    tmp_path,
):
    steps = Steps(tmp_path / "screenshots")
    stack.start_worker()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # The author composes a closure notice; the live preview counts and checks every rendition.
    sign_in(page, site.url, "ana", steps)
    page.get_by_role("link", name="Compose").first.click()
    page.get_by_role("link", name="School closure").click()
    page.get_by_label("All schools").check()
    page.get_by_label("Date of the closure").fill("2026-03-03")
    page.get_by_label("Reason, short", exact=False).first.fill(f"a winter storm {PAYLOAD}")
    page.locator("input[name='reason.es']").fill("una tormenta invernal")
    page.get_by_label("Who is texted (SMS audience)").fill("all")
    expect(page.locator("#audience-count")).to_contain_text("2")
    expect(page.locator("#preview-renditions")).to_contain_text(PAYLOAD)
    expect(page.locator("#preview-renditions")).to_contain_text("segment")
    assert page.locator("#preview-renditions script").count() == 0
    steps.shot(page, "compose-preview")
    page.get_by_role("button", name="Create draft").click()
    expect(page.locator("#message-state")).to_have_text("draft")
    page.get_by_role("button", name="Submit for approval").click()
    expect(page.locator("#message-state")).to_have_text("submitted")
    message_url = page.url
    steps.shot(page, "submitted")
    sign_out(page)

    # The approver sees it in the queue and approves it (acknowledging any warnings).
    sign_in(page, site.url, "ben", steps)
    page.get_by_role("link", name="Approvals").first.click()
    queued = page.locator("article.queued-message")
    expect(queued).to_have_count(1)
    acknowledge = queued.locator("input[name='ack_warnings']")
    if acknowledge.count():
        acknowledge.check()
    steps.shot(page, "approval-queue")
    queued.get_by_role("button", name="Approve and send").click()

    # The message page follows delivery until every channel has sent.
    page.goto(message_url)
    expect(page.locator("#message-state")).to_have_text("sent", timeout=90_000)
    for channel in ("x", "facebook", "sms", "web"):
        bar = page.locator(f"#progress-{channel}")
        assert bar.get_attribute("value") == bar.get_attribute("max")
    steps.shot(page, "delivered")

    # The public page and the feeds carry the alert, with the value shown as text.
    page.goto(site.url + "/")
    expect(page.locator(".banner")).to_contain_text("School closure")
    steps.shot(page, "public-page")
    page.locator("main a[href^='/alerts/']").first.click()
    expect(page.locator("#lang-en")).to_contain_text(f"winter storm {PAYLOAD}")
    expect(page.locator("#lang-es")).to_contain_text("tormenta invernal")
    assert page.locator("main script").count() == 0
    steps.shot(page, "public-alert")
    feed = json.loads(requests.get(f"{site.url}/feeds/alerts.json", timeout=10).text)
    assert any(
        "winter storm" in (item.get("title", "") + item.get("content_text", ""))
        for item in feed["items"]
    )
    assert "winter storm" in requests.get(f"{site.url}/feeds/alerts.atom", timeout=10).text

    assert not errors, errors
    assert [p.stat().st_size > 10_000 for p in steps.taken] == [True] * len(steps.taken)
    context.close()


def test_pages_work_from_the_keyboard_and_text_meets_aa_contrast(
    site,
    browser,  # noqa: F811 (the fixture)
    tmp_path,
):
    site.publish(*closure("a power outage"))
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()

    # Keyboard only: the skip link comes first and lands in the main content; the sign-in form
    # is reached, filled and sent without a mouse, and its error is announced.
    page.goto(f"{site.url}/console/login")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to main content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "username"
    page.keyboard.type("ana")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "password"
    page.keyboard.type("not the password")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_have_text("Wrong user name or password.")

    # WCAG 2.1 AA: 4.5:1 for text, on the public pages and the console's.
    typed = f"{PASSWORD}\n{PASSWORD}\n"
    assert site.run("users", "passwd", "ana", input=typed, token=site.tokens["ana"]).exit_code == 0
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.locator("#signed-in-as")).to_contain_text("ana")
    checked = 0
    pages = ("/", "/console/login", "/console/", "/console/compose?template=school_closure")
    for path in pages:
        page.goto(site.url + path)
        checked += assert_text_contrast(page, path)
    assert checked > 10
    context.close()
