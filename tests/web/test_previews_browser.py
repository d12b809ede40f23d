"""The rendition previews in headless Chromium: the web page and the e-mail's HTML part render in
their sandboxed frames under the console's Content-Security-Policy, a script written into a web
rendition does not run, and the compose page's live preview draws the same cards. Screenshots
under the test's folder (`screenshots/`)."""

from __future__ import annotations

from playwright.sync_api import expect

from broadcaster.core.models import Rendition
from tests.browser import (  # noqa: F401 (browser: the fixture)
    COLOURS,
    PASSWORD,
    Steps,
    browser,
    contrast,
)
from tests.web.test_console_previews import SQLITE_ONLY, draft
from tests.web_server import serving

# Would retitle the frame and the console page, and reach the top window, if scripts ran.
SCRIPT = "<script>document.title = 'ran'; top.location = 'about:blank'</script>"


@SQLITE_ONLY
def test_previews_render_in_sandboxed_frames_that_run_no_script(
    console,
    session_factory,
    browser,  # noqa: F811
    tmp_path,
):
    steps = Steps(tmp_path / "screenshots")
    ana = console.signed_in("ana")  # sets ana's password
    message_id = draft(ana, **{"reason.es": "una tormenta invernal"})
    with session_factory() as session:
        for row in session.query(Rendition).filter_by(message_id=message_id, channel="web"):
            row.text = row.text.replace("</h2>", f"</h2>{SCRIPT}", 1)

    with serving(console.apps[-1]) as url:
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        refused: list[str] = []
        page.on("console", lambda m: refused.append(m.text))
        page.goto(f"{url}/console/login")
        page.get_by_label("User name").fill("ana")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.goto(f"{url}/console/messages/{message_id}")
        frame = page.frame_locator("article[data-channel='web'][data-locale='en'] iframe")
        expect(frame.locator("h2")).to_contain_text("School closure")
        expect(page.locator(".preview-sms .bubble").first).to_be_visible()
        expect(page.locator(".preview-x .weighted").first).to_contain_text("/280")
        assert page.url.endswith(f"/console/messages/{message_id}")  # not navigated away
        assert page.title().startswith(f"Message {message_id}")
        for handle in page.frames[1:]:
            assert handle.title() != "ran"
        page.locator(".preview-email details.email-html summary").first.click()
        email = page.frame_locator(".preview-email iframe").first
        expect(email.locator("h2").first).to_contain_text("School closure")
        page.locator(".preview-sms details.raw summary").first.click()
        expect(page.locator(".preview-sms details.raw pre").first).to_be_visible()
        # WCAG 2.1 AA: the cards' text, 4.5:1 on its background.
        cards = page.locator("#renditions :is(h3, p, span, strong, summary, blockquote)")
        shown = [e for e in cards.all() if e.is_visible() and e.inner_text().strip()]
        assert len(shown) > 50
        for element in shown:
            ratio = contrast(*element.evaluate(COLOURS))
            assert ratio >= 4.5, (element.inner_text()[:40], ratio)
        # Each web frame shows its page (scrolled to, so the screenshot has it painted).
        for web in page.locator(".preview-web iframe").all():
            web.scroll_into_view_if_needed()
            expect(web.content_frame.locator("h2")).to_be_visible()
        # The posts, texts and web pages (page coordinates, for a full-page clip).
        box = page.evaluate(
            "(() => { const r = document.querySelector('#renditions').getBoundingClientRect();"
            " return {x: r.left + scrollX, y: r.top + scrollY, width: r.width,"
            " height: Math.min(r.height, 2700)}; })()"
        )
        page.screenshot(path=str(steps.folder / "previews.png"), clip=box, full_page=True)
        steps.shot(page, "message-previews")

        page.goto(f"{url}/console/compose?template=school_closure")
        page.get_by_label("Date of the closure (required)").fill("2026-03-03")
        page.locator("input[name='schools']").first.check()
        page.locator("input[name='reason']").fill("a storm")
        page.locator("input[name='audience']").fill("all")
        box = page.locator("#preview-renditions")
        expect(box.locator(".bubble").first).to_be_visible()
        expect(box.locator("iframe[sandbox='']").first).to_be_visible()
        expect(box.frame_locator("iframe").first.locator("h2")).to_contain_text("School closure")
        steps.shot(page, "compose-preview")
