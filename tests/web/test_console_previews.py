"""The console shows each rendition the way its platform shows it (templates/console/
_previews.html): a text bubble with its segments and encoding, X post cards with the weighted
count and the other languages' replies, a Facebook post, the web page and the e-mail's HTML part
in sandboxed frames, a voice call's transcript with its voice, and the raw text one click away;
on the message page, in the approval queue and in the compose preview, through Flask's test
client. A hostile rendition stays inside its frame's srcdoc."""

from __future__ import annotations

from typing import Any

import lxml.html
import pytest
from sqlalchemy import select

from broadcaster.core.models import Rendition
from tests.console_client import Browser, body
from tests.web.test_console import closure_form, compose_draft

SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
CHANNELS = ["x", "facebook", "sms", "web", "email", "voice"]
# Breaks out of an attribute and a frame if either is written unescaped.
HOSTILE = '"></iframe><script>alert(1)</script><iframe srcdoc="'


def cards(page: str) -> dict[tuple[str, str], Any]:
    doc = lxml.html.fromstring(page)
    return {
        (card.get("data-channel"), card.get("data-locale")): card
        for card in doc.xpath("//article[contains(@class, 'rendition-card')]")
    }


def one(card: Any, path: str) -> Any:
    """The one element under card at a path of steps "tag.class" ("details.raw pre"), any
    tag for "*" or a bare ".class"."""
    steps = []
    for step in path.split():
        tag, _, name = step.partition(".")
        test = f"[contains(concat(' ', @class, ' '), ' {name} ')]" if name else ""
        steps.append(f"{tag or '*'}{test}")
    [found] = card.xpath(".//" + "//".join(steps))
    return found


def draft(ana: Browser, **extra: Any) -> int:
    return compose_draft(ana, channels=CHANNELS, locales=["en", "es", "ar"], **extra)


def stored(session_factory, message_id: int) -> dict[tuple[str, str], Rendition]:
    with session_factory() as session:
        rows = session.scalars(select(Rendition).where(Rendition.message_id == message_id))
        return {(r.channel, r.locale): r for r in rows}


@SQLITE_ONLY
def test_each_rendition_is_shown_as_its_platform_shows_it(console, session_factory):
    ana = console.signed_in("ana")
    message_id = draft(ana, **{"reason.es": "una tormenta invernal"})
    renditions = stored(session_factory, message_id)
    shown = cards(body(ana.get(f"/console/messages/{message_id}")))
    assert set(shown) == set(renditions)

    for (channel, locale), row in renditions.items():
        card = shown[channel, locale]
        # The raw text, one click away, in the rendition's direction.
        raw = one(card, "details.raw pre.rendition")
        assert raw.text_content() == row.text
        assert (raw.get("lang"), raw.get("dir")) == (locale, "rtl" if locale == "ar" else "ltr")
        assert one(card, "details.raw summary").text_content() == "Raw text"

    # A text: a bubble with its segments and encoding.
    sms = shown["sms", "en"]
    assert one(sms, ".phone .bubble").text_content() == renditions["sms", "en"].text
    metrics = renditions["sms", "ar"].metrics
    ar = shown["sms", "ar"]
    assert one(ar, ".bubble").get("dir") == "rtl"
    assert one(ar, ".encoding").text_content() == metrics["encoding"] == "UCS-2"
    assert one(ar, ".segments").text_content().startswith(f"{metrics['segments']} segment")

    # X: the English post, the other languages replies in its thread; the weighted count.
    x_en, x_es = shown["x", "en"], shown["x", "es"]
    assert "reply" not in one(x_en, ".x-post").get("class")
    assert one(x_en, ".handle").text_content() == "@RiversideUSD"
    assert "reply" in one(x_es, ".x-post").get("class")
    assert one(x_es, ".replying").text_content() == "Replying to the English post"
    weighted = renditions["x", "en"].metrics["weighted_length"]
    assert one(x_en, ".weighted").text_content() == f"{weighted}/280"
    assert one(x_en, ".post-text").text_content() == renditions["x", "en"].text
    assert one(shown["facebook", "en"], ".facebook-post .post-text").text_content() == (
        renditions["facebook", "en"].text
    )

    # The web page in a sandboxed frame that runs no script, never its source.
    web = shown["web", "en"]
    frame = one(web, "iframe.preview-frame")
    assert frame.get("sandbox") == ""  # no allow-scripts, no allow-top-navigation
    document = lxml.html.fromstring(frame.get("srcdoc"))
    policy = document.xpath("//meta[@http-equiv='Content-Security-Policy']/@content")
    assert policy and "script-src 'none'" in policy[0]
    assert renditions["web", "en"].text.strip() in frame.get("srcdoc")
    assert document.xpath("//h2")[0].text_content().startswith("School closure")
    assert not web.xpath(".//pre[not(ancestor::details)]")
    assert one(shown["web", "ar"], "iframe").get("srcdoc").count('dir="rtl"') >= 1

    # The e-mail: its subject and text, and its HTML part in the same kind of frame.
    email = shown["email", "es"]
    assert one(email, ".email-subject strong").text_content().startswith("Riverside")
    assert "una tormenta invernal" in one(email, ".email-body").text_content()
    part = one(email, "details.email-html iframe")
    assert part.get("sandbox") == "" and "script-src 'none'" in part.get("srcdoc")

    # A call: what it says, in which language and voice.
    voice = shown["voice", "es"]
    assert "Polly.Lupe" in one(voice, ".voice-name").text_content()
    assert one(voice, ".transcript").text_content() == renditions["voice", "es"].text


@SQLITE_ONLY
def test_a_hostile_rendition_stays_inside_its_frame_and_its_text(console, session_factory):
    ana = console.signed_in("ana")
    message_id = draft(ana, reason=HOSTILE)
    with session_factory() as session:
        # A web rendition is autoescaped when rendered: write the hostile markup into it as a
        # broken template or a tampered row would.
        for row in session.scalars(select(Rendition).where(Rendition.message_id == message_id)):
            if row.channel == "web":
                row.text = row.text.replace("<p>", f"<p>{HOSTILE}", 1)
    assert ana.post(f"/console/messages/{message_id}/submit").status_code == 302
    ben = console.signed_in("ben")
    renditions = stored(session_factory, message_id)
    for path in (f"/console/messages/{message_id}", "/console/approvals"):
        page = body(ben.get(path))
        doc = lxml.html.fromstring(page)
        # No script but the console's own file; one frame per web rendition and e-mail.
        assert [s.get("src") for s in doc.xpath("//script")] == ["/static/console.js"], path
        frames = doc.xpath("//iframe")
        assert len(frames) == 6, path
        assert all(f.get("sandbox") == "" for f in frames)
        shown = cards(page)
        srcdoc = one(shown["web", "en"], "iframe").get("srcdoc")
        assert HOSTILE in srcdoc  # the whole string stayed inside the attribute
        assert "<script>" not in page and "&lt;script&gt;" in page
        sms = one(shown["sms", "en"], ".bubble").text_content()
        assert sms == renditions["sms", "en"].text and HOSTILE in sms


@SQLITE_ONLY
def test_the_compose_preview_draws_the_same_cards(console):
    ana = console.signed_in("ana")
    ana.get("/console/compose?template=school_closure")
    form = closure_form(ana, reason=HOSTILE, channels=CHANNELS, locales=["en", "es"])
    response = ana.client.post(
        "/console/compose/preview",
        data=form,
        headers={"Accept": "application/json", "X-CSRFToken": ana.token},
    )
    assert response.status_code == 200
    fragment = response.get_json()["renditions_html"]
    shown = cards(f"<div>{fragment}</div>")
    assert len(shown) == 12
    assert one(shown["x", "es"], ".replying").text_content() == "Replying to the English post"
    assert (
        one(shown["x", "es"], ".where").text_content() == "Goes to: reply thread on @RiversideUSD"
    )
    assert one(shown["sms", "en"], ".encoding").text_content() in ("GSM-7", "UCS-2")
    assert HOSTILE in one(shown["sms", "en"], ".bubble").text_content()
    assert "<script>" not in fragment
    frames = lxml.html.fromstring(f"<div>{fragment}</div>").xpath("//iframe")
    assert len(frames) == 4 and all(f.get("sandbox") == "" for f in frames)
