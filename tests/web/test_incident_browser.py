"""An incident commander triggers a lockdown from a phone: the console at 375 x 812 in headless
Chromium, tapped through from the menu to the message's delivery page, every target measured
(WCAG 2.2 AA asks for 24 x 24 CSS px; the page's buttons are at least 44 px tall), the text's
contrast measured and every control reached by the keyboard with a visible focus and a name
(tests/browser.py). Screenshots
of each step are left under the test's folder (`screenshots/`); docs/screenshots/ has the best."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser import (  # noqa: F401 (the fixture)
    PASSWORD,
    Steps,
    assert_keyboard_walk,
    assert_text_contrast,
    browser,
)

PHONE = {"width": 375, "height": 812}


def small_targets(page: Page, selector: str, least: float) -> list[str]:
    """The visible targets in `selector` smaller than `least` px either way, described."""
    found = page.locator(selector).evaluate_all(
        """(els, least) => els
            .map(el => [el, el.getBoundingClientRect()])
            .filter(([el, box]) => box.width > 0 && (box.width < least || box.height < least))
            .map(([el, box]) => `${el.outerHTML.slice(0, 60)}: ${box.width}x${box.height}`)""",
        least,
    )
    return list(found)


def test_commander_triggers_a_lockdown_on_a_phone(site, browser, tmp_path):  # noqa: F811
    typed = f"{PASSWORD}\n{PASSWORD}\n"
    assert (
        site.run("users", "passwd", "carmen", input=typed, token=site.tokens["carmen"]).exit_code
        == 0
    )
    steps = Steps(tmp_path / "screenshots")
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, has_touch=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto(f"{site.url}/console/login")
    page.get_by_label("User name").fill("carmen")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").tap()
    page.get_by_role("link", name="Incident").tap()
    expect(page.get_by_role("heading", level=1)).to_have_text("Incident")
    page.wait_for_load_state("load")  # measured with its stylesheets applied
    assert small_targets(page, "main a, main button", 44) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert assert_text_contrast(page, "incident: choose") > 3
    assert assert_keyboard_walk(page, "incident: choose") > 3
    steps.shot(page, "incident-choose")

    page.get_by_role("link", name="Lockdown").tap()
    page.get_by_label("Lincoln High School").tap()  # on the school page: its load is awaited
    page.wait_for_load_state("load")
    # The radio's whole row is the target; every control is at least 44 px tall.
    assert (
        small_targets(page, "main label.big-choice, main input[type=text], main button", 44) == []
    )
    assert small_targets(page, "header nav a, header nav button", 24) == []
    assert assert_text_contrast(page, "incident: school") > 3
    assert assert_keyboard_walk(page, "incident: school") > 3
    steps.shot(page, "incident-school")
    # From the keyboard: the reason field, then the review button.
    page.get_by_label("Reason", exact=False).focus()
    page.keyboard.type("police activity nearby")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Review"
    page.keyboard.press("Enter")

    expect(page.locator("#review-school")).to_have_text("Lincoln High School")
    expect(page.locator("#review-audience")).to_contain_text("1 famil")
    send = page.get_by_role("button", name="Send lockdown now")
    assert send.bounding_box()["height"] >= 44
    assert assert_text_contrast(page, "incident: review") > 3
    steps.shot(page, "incident-confirm")
    send.tap()

    expect(page.locator("#message-state")).not_to_have_text("draft")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Lockdown")
    expect(page.locator("#message-facts")).to_contain_text("pre-approved")
    steps.shot(page, "incident-delivery")
    page.screenshot(path=str(steps.folder / "05-incident-delivery-top.png"))  # what the phone shows
    assert not errors, errors
    context.close()
