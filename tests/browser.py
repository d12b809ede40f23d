"""Shared pieces of the browser tests: headless Chromium (Debian's `chromium`) through
Playwright, numbered screenshots, signing in and out of the console, and the WCAG 2.2 AA checks a
page must pass: text contrast (4.5:1), every control reached from the keyboard with a visible
focus and a name, and targets of at least 24 x 24 CSS px."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import IN_CI

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


# Text a person reads, checked for contrast on the console's and the public pages.
TEXT = ":is(main, nav) :is(h1, h2, h3, p, a, li, span, label, legend, button, time, td, th, dt, dd)"


# Each visible text element's text and colours, in one call rather than three per element.
TEXT_COLOURS = f"""selector => [...document.querySelectorAll(selector)]
    .filter(el => {{
        const box = el.getBoundingClientRect();
        return box.width > 0 && box.height > 0 && getComputedStyle(el).visibility !== 'hidden'
            && el.innerText.trim();
    }})
    .map(el => [el.innerText.slice(0, 40), ...({COLOURS})(el)])"""


def assert_text_contrast(page: Page, where: str) -> int:
    """Every visible text element's contrast is at least 4.5:1 (WCAG AA); returns how many."""
    found = page.evaluate(TEXT_COLOURS, TEXT)
    for text, foreground, background in found:
        ratio = contrast(foreground, background)
        assert ratio >= 4.5, (where, text, foreground, background, ratio)
    return len(found)


# What the keyboard can reach, and a control's accessible name as a screen reader announces it
# (its label, aria-label or aria-labelledby, else its text or value).
FOCUSABLE = (
    "a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), "
    "select:not([disabled]), textarea:not([disabled]), summary, [tabindex]:not([tabindex='-1'])"
)
CONTROLS = f"""() => [...document.querySelectorAll("{FOCUSABLE}")].filter(el =>
    el.getClientRects().length && getComputedStyle(el).visibility !== 'hidden')"""
NAME = """el => {
    const by = el.getAttribute('aria-labelledby');
    const named = by ? by.split(' ').map(id => document.getElementById(id)?.textContent || '')
        : [...(el.labels || [])].map(label => label.textContent);
    return (named.join(' ') || el.getAttribute('aria-label') || el.textContent || el.value
            || '').trim();
}"""
FOCUSED = f"""() => {{
    const el = document.activeElement;
    if (!el || el === document.body) return null;
    const style = getComputedStyle(el);
    const controls = ({CONTROLS})();
    return {{
        index: controls.indexOf(el),
        what: el.outerHTML.slice(0, 80),
        name: ({NAME})(el),
        radio: el.type === 'radio' ? el.name : null,
        outlined: (style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2)
            || style.boxShadow !== 'none',
    }};
}}"""
# Every control's box, and whether it is a link inside a sentence (2.5.8's inline exception).
TARGETS = f"""() => ({CONTROLS})().map(el => {{
    const box = el.getBoundingClientRect();
    const inline = el.tagName === 'A' && getComputedStyle(el).display === 'inline'
        && el.parentElement.textContent.trim().length > el.textContent.trim().length;
    return {{what: el.outerHTML.slice(0, 80), x: box.x, y: box.y, width: box.width,
             height: box.height, inline}};
}})"""


def assert_keyboard_walk(page: Page, where: str) -> int:
    """Tab from the top of the page to its end: every control is reached (one radio button per
    group, as browsers do), shows where the focus is and has a name. Returns how many."""
    controls = page.evaluate(f"({CONTROLS})().map(el => el.type === 'radio' ? el.name : null)")
    expected = {i for i, radio in enumerate(controls) if radio is None}
    groups = {radio for radio in controls if radio is not None}
    # Start at the top whatever was clicked or tapped before: focusing an unfocusable-by-Tab
    # marker put first in the body moves the browser's sequential-navigation starting point.
    page.evaluate(
        "(() => { const top = document.createElement('span'); top.id = 'walk-start';"
        " top.tabIndex = -1; document.body.prepend(top); top.focus(); })()"
    )
    reached: set[int] = set()
    last = None
    for _ in range(3 * len(controls) + 3):  # a date field takes a Tab per part
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        if focused is not None and focused["index"] == last:
            continue  # still in the same field (the day, month and year of a date)
        if focused is None or focused["index"] < 0 or focused["index"] in reached:
            break  # past the last control: the browser's own or back to the first
        last = focused["index"]
        reached.add(last)
        groups.discard(focused["radio"])
        assert focused["outlined"], (where, "focus not visible", focused["what"])
        assert focused["name"], (where, "no accessible name", focused["what"])
    missed = [
        controls_html
        for i, controls_html in enumerate(
            page.evaluate(f"({CONTROLS})().map(el => el.outerHTML.slice(0, 80))")
        )
        if i in expected - reached
    ]
    page.evaluate("document.getElementById('walk-start').remove()")
    assert not missed and not groups, (where, "not reached by Tab", missed, groups)
    return len(reached)


def _distance(point: tuple[float, float], box: dict) -> float:
    """From a point to the nearest point of a box (0 inside it)."""
    dx = max(box["x"] - point[0], 0, point[0] - box["x"] - box["width"])
    dy = max(box["y"] - point[1], 0, point[1] - box["y"] - box["height"])
    return math.hypot(dx, dy)


def assert_target_sizes(page: Page, where: str) -> None:
    """WCAG 2.2 2.5.8 (AA): every control at least 24 x 24 CSS px, except a link inside a
    sentence and a smaller target with room around it: a 24-px circle centred on it meets no
    other target, nor the circle of another small one."""
    targets = [t for t in page.evaluate(TARGETS) if not t["inline"]]
    small = [t for t in targets if t["width"] < 24 or t["height"] < 24]
    crowded = []
    for target in small:
        centre = (target["x"] + target["width"] / 2, target["y"] + target["height"] / 2)
        for other in targets:
            if other is target:
                continue
            near = _distance(centre, other) < 12
            if other in small:
                middle = (other["x"] + other["width"] / 2, other["y"] + other["height"] / 2)
                near = near or math.dist(centre, middle) < 24
            if near:
                crowded.append((target["what"], round(target["width"]), round(target["height"]),
                                "beside", other["what"]))  # fmt: skip
                break
    assert not crowded, (where, "targets under 24 x 24 px without room around them", crowded)
