"""A message in six languages to a mixed-language audience, end to end (issue 14, done when):
real Celery workers, the provider sandbox (Twilio texts and calls, its SMTP server, X and
Facebook), the web app, and the public page in a real browser.

Each family gets its own language on each of its channels (a Somali family is called in
English: no voice speaks Somali); the district's one X account posts English and a reply thread
of the other five languages, each answering the one before; Facebook carries every language in
one post; and the Arabic part of the public page reads right to left (a screenshot is kept).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from broadcaster.core.config import SAMPLE_CONFIG, SAMPLE_DISTRICT
from broadcaster.core.languages import LANGUAGES
from tests.browser import Steps, browser  # noqa: F401 (a fixture)
from tests.conftest import ON_POSTGRESQL, submit_and_approve

pytestmark = [pytest.mark.slow, ON_POSTGRESQL]

SIX = ["en", "es", "vi", "zh", "ar", "so"]
# The reason, as an author types it in each language.
REASONS = {
    "en": "a water main break",
    "es": "una rotura de tubería",
    "vi": "vỡ ống nước chính",
    "zh": "供水主管道破裂",
    "ar": "انفجار أنبوب المياه الرئيسي",
    "so": "tuubbada biyaha oo jabtay",
}
# Where on screen a piece of an element's text is drawn (its left edge).
RANGE_X = """(el, text) => {
    const node = el.firstChild, range = document.createRange();
    const at = node.textContent.indexOf(text);
    range.setStart(node, at); range.setEnd(node, at + text.length);
    return range.getBoundingClientRect().left;
}"""
SPOKEN = {"en": "en-US", "es": "es-US", "vi": "vi-VN", "zh": "cmn-CN", "ar": "arb", "so": "en-US"}


def district_file(run, tmp_path) -> None:
    """The sample district publishing in the six languages, calls and e-mails unthrottled."""
    text = SAMPLE_CONFIG.read_text(encoding="utf-8")
    text = text.replace('locales = ["en", "es"]', f"locales = {SIX!r}".replace("'", '"'), 1)
    assert f'"{SIX[-1]}"]' in text
    text = text.replace(
        'name = "district-voice"\n', 'name = "district-voice"\nrate_per_second = 200.0\n', 1
    ).replace('name = "district-email"\n', 'name = "district-email"\nrate_per_second = 500.0\n', 1)
    text = text.replace('roster = "roster.csv"', f'roster = "{SAMPLE_DISTRICT / "roster.csv"}"')
    config = tmp_path / "district.toml"
    config.write_text(text, encoding="utf-8")
    run.env["BROADCASTER_CONFIG"] = str(config)


def families(run, tmp_path) -> dict[str, dict[str, str]]:
    """Two families per language, each with a mobile and an e-mail address; language -> the
    family's phone and address."""
    admin = run.json("users", "add", "it")["token"]
    rows, by_language = [], {}
    for i, language in enumerate(SIX * 2):
        phone, email = f"+1415555{1000 + i:04d}", f"family{i}@example.org"
        rows.append(f"H-{i},{phone},{email},{language},lincoln-hs,sms+call+email")
        by_language.setdefault(language, {})[phone] = email
    path = tmp_path / "contacts.csv"
    path.write_text(
        "household,phone,email,language,schools,channels\n" + "\n".join(rows) + "\n",
        encoding="utf-8",
    )
    run.json("contacts", "import", str(path), "--as", "it", token=admin)
    return by_language


def test_six_languages_reach_each_family_in_its_own_and_the_arabic_page_is_rtl(
    stack,
    run,
    tokens,
    web_app,
    browser,  # noqa: F811 (the fixture imported above)
    tmp_path,
):
    district_file(run, tmp_path)
    by_language = families(run, tmp_path)
    language_of = {p: lang for lang, phones in by_language.items() for p in phones}
    language_of |= {e: lang for lang, phones in by_language.items() for e in phones.values()}
    reasons = [f"reason.{lang}={text}" for lang, text in REASONS.items() if lang != "en"]
    draft = run.json(
        "compose", "school_closure", "--as", "ana",
        "--channels", "x,facebook,sms,voice,email,web",
        "--var", "schools=all", "--var", "date=2026-03-03", "--var", f"reason={REASONS['en']}",
        *[arg for r in reasons for arg in ("--var", r)],
        "--audience", "all", token=tokens["ana"],
    )  # fmt: skip
    rendered = {(r["channel"], r["locale"]): r["text"] for r in draft["renditions"]}
    assert {locale for _, locale in rendered} == set(SIX)
    for language in SIX[1:]:  # each reason went into its own language
        assert REASONS[language] in rendered[("sms", language)], language
    run.env["BROADCASTER_PUBLIC_URL"] = url = web_app()
    submit_and_approve(run, tokens, draft)
    stack.start_worker()
    view = stack.wait_done(draft["id"], timeout=180)
    assert view["state"] == "sent", view

    # Texts: one per family, in its language.
    texts = stack.sandbox.posts("twilio")
    assert sorted(t["to"] for t in texts) == sorted(p for lang in SIX for p in by_language[lang])
    for text in texts:
        assert text["body"] == rendered[("sms", language_of[text["to"]])], text["to"]
    # Calls: read in the family's language by a voice of it; Somali in English.
    calls = stack.sandbox.posts("voice")
    assert len(calls) == 12
    for call in calls:
        language = language_of[call["to"]]
        spoken = "en" if language == "so" else language
        assert {s["language"] for s in call["said"]} == {SPOKEN[language]}, call["to"]
        assert any(s["text"] == rendered[("voice", spoken)] for s in call["said"]), call["to"]
    # E-mails: the subject in the family's language, its body first.
    mails = stack.sandbox.smtp_messages()
    assert len(mails) == 12
    for mail in mails:
        (address,) = mail["rcpt_tos"]
        subject, _, body = rendered[("email", language_of[address])].partition("\n\n")
        assert mail["subject"] == subject.removeprefix("Subject: ")
        assert str(mail["text"]).replace("\r\n", "\n").strip().startswith(body.strip())

    # X: English from the district's account, then a thread of the other five, in order.
    tweets = stack.sandbox.posts("x")
    assert [t["text"] for t in tweets] == [rendered[("x", lang)] for lang in SIX]
    assert tweets[0]["in_reply_to_tweet_id"] is None
    for before, reply in zip(tweets, tweets[1:], strict=False):
        assert reply["in_reply_to_tweet_id"] == before["id"]
    # Facebook: one post carrying every language.
    [post] = stack.sandbox.posts("facebook")
    for language in SIX:
        assert rendered[("facebook", language)] in post["message"], language

    # The public page, in a real browser: the Arabic version reads right to left.
    steps = Steps(tmp_path / "screenshots")
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(url + "/")
    page.locator("main a[href^='/alerts/']").first.click()
    arabic = page.locator("#lang-ar")
    expect(arabic).to_contain_text(REASONS["ar"])
    assert arabic.evaluate("el => getComputedStyle(el).direction") == "rtl"
    assert page.locator("#lang-en").evaluate("el => getComputedStyle(el).direction") == "ltr"
    # A phone number keeps its order inside the Arabic text ("+1 951-555-0100", not "0100-...").
    phone = arabic.locator("a[href^='tel:']")
    assert phone.evaluate("el => getComputedStyle(el).direction") == "ltr"
    plus, last = (phone.evaluate(RANGE_X, arg) for arg in ("+", "0100"))
    assert plus < last
    for language in SIX:
        expect(page.locator(f"#lang-{language}")).to_be_visible()
    arabic.scroll_into_view_if_needed()
    steps.shot(page, "six-languages-public-page")
    assert steps.taken[0].stat().st_size > 10_000
    assert LANGUAGES["ar"].rtl
    assert run("records", "verify").exit_code == 0
