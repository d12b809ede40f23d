"""The console and the public site in a real browser: headless Chromium (Debian's `chromium`)
driven by Playwright, against the real app, Celery workers, Redis and the provider sandbox.

An author signs in and composes a closure notice, an approver signs in and approves it, the
message page follows delivery to `sent`, and the public page and feeds show the alert. Each step
leaves a screenshot under the test's temporary directory (`screenshots/`). Another test uses the
pages from the keyboard alone and measures the text's contrast (WCAG 2.1 AA).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import IN_CI
from tests.public_site import PAYLOAD, closure

PASSWORD = "correct horse battery staple"
CHROMIUM = os.environ.get("BROADCASTER_TEST_CHROMIUM") or shutil.which("chromium")
# Without these, Chromium reaches for Google's services, which this machine's network refuses.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Browser:
    if not CHROMIUM:
        if IN_CI:
            pytest.fail("chromium is not installed and CI=true (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Steps:
    """Numbered screenshots of each step."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.taken: list[Path] = []

    def shot(self, page: Page, name: str) -> None:
        path = self.folder / f"{len(self.taken) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)


def sign_in(page: Page, url: str, name: str, steps: Steps) -> None:
    page.goto(f"{url}/console/login")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    steps.shot(page, f"sign-in-{name}")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signed-in-as")).to_contain_text(name)


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to the staff console")


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
    stack, site, people, browser, tmp_path
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


# The effective colours of an element: its own text colour, and the first opaque background
# found walking up from it (what the text is drawn on).
COLOURS = """el => {
    let bg = el, back = 'rgba(0, 0, 0, 0)';
    while (bg) {
        back = getComputedStyle(bg).backgroundColor;
        if (!back.startsWith('rgba(0, 0, 0, 0)') && back !== 'transparent') break;
        bg = bg.parentElement;
    }
    return [getComputedStyle(el).color, bg ? back : 'rgb(255, 255, 255)'];
}"""


def luminance(css: str) -> float:
    red, green, blue = (int(part) for part in css[css.index("(") + 1 : -1].split(",")[:3])

    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * linear(red) + 0.7152 * linear(green) + 0.0722 * linear(blue)


def contrast(foreground: str, background: str) -> float:
    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_pages_work_from_the_keyboard_and_text_meets_aa_contrast(site, browser, tmp_path):
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
        for element in page.locator("main :is(h1, h2, p, a, li, span, label, button, time)").all():
            if not element.is_visible() or not element.inner_text().strip():
                continue
            foreground, background = element.evaluate(COLOURS)
            ratio = contrast(foreground, background)
            assert ratio >= 4.5, (path, element.inner_text()[:40], foreground, background, ratio)
            checked += 1
    assert checked > 10
    context.close()
