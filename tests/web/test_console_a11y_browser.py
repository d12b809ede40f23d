"""The admin's and the records officer's console pages in Chromium, checked as WCAG 2.2 AA asks:
every control reached from the keyboard in one walk of Tab presses, with a visible focus and an
accessible name; text contrast of 4.5:1; targets of 24 x 24 CSS px. One browser session, signed
in as a user who is both admin and records officer, so one sign-in opens every page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser import (
    PASSWORD,
    Steps,
    assert_keyboard_walk,
    assert_target_sizes,
    assert_text_contrast,
    browser,
    sign_in,
)
from tests.conftest import submit_and_approve

__all__ = ["browser"]  # the module's Chromium, a fixture


@pytest.mark.slow  # about 12 s: eight pages walked key by key
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the pages, not the database
def test_admin_and_records_pages_work_by_keyboard_with_aa_contrast_and_target_size(
    site, browser, compose_closure, tmp_path
):
    run, tokens = site.run, site.tokens
    admin = run.json("users", "add", "it")["token"]
    both = ("--role", "admin", "--role", "records_officer", "--as", "it")
    rosa = run.json("users", "add", "rosa", *both, token=admin)["token"]
    typed = f"{PASSWORD}\n{PASSWORD}\n"
    assert run("users", "passwd", "rosa", input=typed, token=rosa).exit_code == 0
    run.json("users", "add", "zoe", "--role", "author", "--as", "it", token=admin)
    message = compose_closure()
    submit_and_approve(run, tokens, message)  # queued: its report has a timeline
    steps = Steps(tmp_path / "screenshots")
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, site.url, "rosa", steps)

    def check(name: str) -> None:
        steps.shot(page, name)
        assert assert_keyboard_walk(page, name) > 5
        assert_target_sizes(page, name)
        assert assert_text_contrast(page, name) > 5

    page.goto(f"{site.url}/console/users")
    check("users")
    # The add form by keyboard alone: type the name, tick a role, send; the token page.
    page.get_by_label("User name").focus()
    page.keyboard.type("kim")
    page.keyboard.press("Tab")
    page.keyboard.press("Space")  # the first role: author
    expect(page.locator("#new-role-author")).to_be_checked()
    page.get_by_role("button", name="Add the user").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("kim is added")
    check("user-added")
    page.goto(f"{site.url}/console/users/zoe")
    check("user-zoe")
    page.goto(f"{site.url}/console/contacts")
    check("contacts")
    page.goto(f"{site.url}/console/contacts/find?digits=0101")
    expect(page.locator("#found tbody tr")).to_have_count(2)
    check("find-a-family")
    page.goto(f"{site.url}/console/records")
    check("records")
    page.goto(f"{site.url}/console/records/export")
    check("records-export")
    page.goto(f"{site.url}/console/messages/{message['id']}/report")
    check("records-report")
    assert not errors, errors

    # The checks find what they look for: a control without a name, two tiny buttons side by
    # side, a pale text, a focus ring taken away.
    page.evaluate("""() => document.querySelector('main').insertAdjacentHTML('beforeend',
        '<input id="bare"><button class="tiny">a</button><button class="tiny">b</button>')""")
    with pytest.raises(AssertionError, match="no accessible name"):
        assert_keyboard_walk(page, "bare")
    style(page, ".tiny { width: 12px; height: 12px; padding: 0; margin: 0 }")
    with pytest.raises(AssertionError, match="without room around them"):
        assert_target_sizes(page, "tiny")
    style(page, "main p { color: #999 !important }")
    with pytest.raises(AssertionError, match="pale"):
        assert_text_contrast(page, "pale")
    page.reload()
    style(page, ":focus-visible { outline: none !important; box-shadow: none !important }")
    with pytest.raises(AssertionError, match="focus not visible"):
        assert_keyboard_walk(page, "no ring")


def style(page, css: str) -> None:
    """Add CSS to the page: a constructed style sheet, which the console's CSP lets through
    (it refuses inline <style>)."""
    page.evaluate(
        """css => { const sheet = new CSSStyleSheet(); sheet.replaceSync(css);
                    document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet]; }""",
        css,
    )
