"""The admin and correction pages in a real browser (Debian's Chromium through Playwright): an
admin disables a user who then cannot sign in; an author drafts an update of a message that went
out and an approver retracts it, its posts deleted by a real worker through the sandbox. Each
step leaves a screenshot under the test's folder (`screenshots/`)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser import PASSWORD, Steps, browser, sign_in, sign_out
from tests.conftest import submit_and_approve

__all__ = ["browser"]  # the module's Chromium, a fixture


@pytest.fixture
def passwords(run, tokens):
    """Console passwords for ana (author), ben (approver) and `it`, an admin."""
    tokens = {**tokens, "it": run.json("users", "add", "it")["token"]}
    for name in ("ana", "ben", "it"):
        result = run("users", "passwd", name, input=f"{PASSWORD}\n{PASSWORD}\n", token=tokens[name])
        assert result.exit_code == 0, result.output
    return tokens


def new_page(browser) -> tuple[Page, list[str]]:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page, errors


def test_an_admin_disables_a_user_who_then_cannot_sign_in(site, passwords, browser, tmp_path):
    steps = Steps(tmp_path / "screenshots")
    page, errors = new_page(browser)
    sign_in(page, site.url, "it", steps)
    page.get_by_role("link", name="Users").click()
    row = page.locator("#user-ben")
    expect(row.locator(".user-state")).to_have_text("enabled")
    steps.shot(page, "users")
    row.get_by_role("button", name="Disable ben").click()
    expect(page.locator(".flash.success")).to_contain_text("ben is disabled")
    expect(page.locator("#user-ben .user-state")).to_have_text("disabled")
    steps.shot(page, "ben-disabled")
    sign_out(page)

    page.get_by_label("User name").fill("ben")
    page.get_by_label("Password").fill(PASSWORD)  # ben's right password
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong user name or password.")
    expect(page.locator("#signed-in-as")).to_have_count(0)
    steps.shot(page, "ben-refused")
    assert not errors, errors


@pytest.mark.slow  # a real worker sends the posts and deletes them
def test_an_author_drafts_an_update_and_an_approver_retracts_the_message(
    stack, site, passwords, compose_closure, browser, run, tmp_path
):
    steps = Steps(tmp_path / "screenshots")
    stack.start_worker(concurrency=2)
    closure = compose_closure("--channels", "x,facebook", audience=None)  # texts nobody
    submit_and_approve(run, passwords, closure)
    mid = closure["id"]
    assert stack.wait_done(mid)["state"] == "sent"
    page, errors = new_page(browser)

    # The author follows the closure up with an update, which waits for approval.
    sign_in(page, site.url, "ana", steps)
    page.goto(f"{site.url}/console/messages/{mid}")
    page.get_by_role("link", name="Send an update").click()
    page.get_by_role("link", name="School closure").click()
    page.get_by_label("All schools").check()
    page.get_by_label("Date of the closure").fill("2026-03-04")
    page.get_by_label("Reason, short", exact=False).first.fill("the storm damage")
    expect(page.locator("#channel-x")).to_be_checked()
    steps.shot(page, "update-form")
    page.get_by_role("button", name="Create the update").click()
    expect(page.locator("#message-state")).to_have_text("draft")
    expect(page.locator(".flash.success")).to_contain_text(f"of message {mid} drafted")
    steps.shot(page, "update-drafted")
    sign_out(page)

    # The approver withdraws the closure: its posts are deleted by the worker.
    sign_in(page, site.url, "ben", steps)
    page.goto(f"{site.url}/console/messages/{mid}")
    page.get_by_label("Reason for withdrawing it").fill("sent for the wrong date")
    steps.shot(page, "retract-form")
    page.get_by_role("button", name="Retract").click()
    expect(page.locator(".flash.success")).to_contain_text("Retracting")
    view = run.json("status", str(mid), "--follow", "--timeout", "120")
    assert view["state"] == "retracted" and view["retraction"]["still_live"] == []
    page.reload()
    expect(page.locator("#message-state")).to_have_text("retracted")
    expect(page.locator("#still-live")).to_have_text("Every post is down.")
    steps.shot(page, "retracted")
    assert [t["deleted"] for t in stack.sandbox.posts("x")] == [True, True]
    assert [p["deleted"] for p in stack.sandbox.posts("facebook")] == [True]
    assert not errors, errors
