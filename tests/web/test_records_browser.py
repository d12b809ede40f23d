"""The records officer in headless Chromium: places a legal hold on a message, reads what the
retention schedule would destroy, opens the message's after-action report and downloads the
export as a zip, which `broadcaster records verify-export` accepts once unzipped. Screenshots of
each step are left under the test's folder (`screenshots/`); docs/screenshots/ has the best."""

from __future__ import annotations

import zipfile

import pytest
from playwright.sync_api import expect

from tests.browser import PASSWORD, Steps, browser, sign_in  # noqa: F401 (the fixture)
from tests.conftest import submit_and_approve


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # one is enough for the pages
def test_a_records_officer_holds_and_downloads_an_export_that_verifies(
    site,
    browser,  # noqa: F811 (the fixture)
    compose_closure,
    tmp_path,
):
    run, tokens = site.run, site.tokens
    typed = f"{PASSWORD}\n{PASSWORD}\n"
    assert run("users", "passwd", "dev", input=typed, token=tokens["dev"]).exit_code == 0
    draft = compose_closure()
    submit_and_approve(run, tokens, draft)  # its deliveries queued: no worker needed here
    steps = Steps(tmp_path / "screenshots")
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    sign_in(page, site.url, "dev", steps)
    page.get_by_role("link", name="Records").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Records")
    page.get_by_label("Message number").first.fill(str(draft["id"]))
    page.get_by_label("Reason", exact=False).fill("Public records request 2026-14")
    page.get_by_role("button", name="Place hold").click()
    expect(page.locator(".flashes")).to_contain_text(f"placed on message {draft['id']}")
    expect(page.locator("#holds-table")).to_contain_text("Public records request 2026-14")
    expect(page.locator("#retention")).to_contain_text("Nothing is past retention")
    steps.shot(page, "records-hold")

    page.locator("#report-message").fill(str(draft["id"]))
    page.get_by_role("button", name="Show its report").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("After-action report")
    expect(page.locator("#report-timeline")).to_contain_text("approve")
    steps.shot(page, "records-report")

    page.goto(f"{site.url}/console/records/export")
    page.get_by_label("Message number").fill(str(draft["id"]))
    steps.shot(page, "records-export")
    with page.expect_download() as downloading:
        page.get_by_role("button", name="Download the export").click()
    download = downloading.value
    assert download.suggested_filename == f"records-export-message-{draft['id']}.zip"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        archive.extractall(tmp_path / "unzipped")
    folder = tmp_path / "unzipped" / f"records-export-message-{draft['id']}"
    result = run("records", "verify-export", str(folder))
    assert result.exit_code == 0, result.output
    assert "export intact" in result.output

    assert not errors, errors
    assert all(p.stat().st_size > 10_000 for p in steps.taken)
    context.close()
