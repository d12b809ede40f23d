"""What the console needs to show each rendition the way its platform shows it (the macros in
templates/console/_previews.html draw them): the account a post goes out on and the post an X
reply answers, an e-mail's subject, text and HTML part as delivery builds them, the voice a call
speaks in, and the web and e-mail HTML as documents for a sandboxed frame.

The frame documents carry their own Content-Security-Policy refusing every script; the page
puts them in `<iframe sandbox srcdoc="...">` (no allow-scripts, no allow-top-navigation), with
Jinja's autoescape writing them into the attribute.
"""

from __future__ import annotations

from typing import Any

from flask import url_for

from broadcaster.core.config import DistrictConfig
from broadcaster.core.languages import direction
from broadcaster.core.models import Message
from broadcaster.delivery import routing
from broadcaster.delivery.jobs import email_html, text_for
from broadcaster.web.console.present import language_name
from channel_adapters.email import html_from_text, split_rendition
from channel_adapters.voice import say_language, say_voice

# A second line of defence behind the sandbox: the frame's own policy runs no script, embeds
# nothing and submits nowhere (the page's policy, which the frame inherits, still applies).
FRAME_POLICY = "script-src 'none'; object-src 'none'; frame-src 'none'; form-action 'none'"
_FRAME_HEAD = (
    f'<meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="{FRAME_POLICY}">'
)


def frame_document(body_html: str, locale: str) -> str:
    """A web rendition as the public site shows it, as a document for a sandboxed frame."""
    style = url_for("static", filename="style.css")
    return (
        f'<!DOCTYPE html>\n<html lang="{locale}" dir="{direction(locale)}"><head>{_FRAME_HEAD}'
        f'<link rel="stylesheet" href="{style}"></head>\n'
        f'<body><main class="wrap">\n{body_html}\n</main></body></html>\n'
    )


def _framed(document: str) -> str:
    """A whole HTML document (an e-mail's HTML part) with the frame's policy in its head."""
    if "<head>" in document:
        return document.replace("<head>", f"<head>{_FRAME_HEAD}", 1)
    return f"<!DOCTYPE html>\n<html><head>{_FRAME_HEAD}</head><body>{document}</body></html>"


def _targets(district: DistrictConfig, message: Message) -> dict[str, Any]:
    accounts = {a.name: a for a in district.accounts}
    return {t.account: accounts[t.account] for t in message.targets if t.account in accounts}


def previews(
    district: DistrictConfig, message: Message, renditions: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The view's renditions (dumped authoring.views.Rendition, in the message's order) with
    what their platform previews show."""
    targets = _targets(district, message)
    rendered = {(r.channel, r.locale) for r in message.renditions}
    posts = routing.posts(list(targets.values()), message.locales, rendered)
    voices = [a for a in targets.values() if a.channel == "voice"]
    out = []
    for r in renditions:
        channel, locale = r["channel"], r["locale"]
        shown: dict[str, Any] = {**r, "dir": direction(locale)}
        carrying = routing.carrying(posts, channel, locale)
        if carrying:
            account = targets[carrying[0].account]
            shown["account"] = account.handle or account.name
            after = carrying[0].after
            shown["reply_to"] = language_name(after) if after else None
        if channel == "web":
            shown["frame"] = frame_document(r["text"], locale)
        elif channel == "email":
            subject, body = split_rendition(text_for(message, "email", locale))
            html = email_html(message, locale, subject or "")
            shown["subject"], shown["body"] = subject, body
            shown["frame"] = _framed(html or html_from_text(body, subject or ""))
        elif channel == "voice":
            settings = voices[0].settings if voices else {}
            shown["spoken_language"] = say_language(settings, locale)
            shown["voice"] = say_voice(settings, locale)
        out.append(shown)
    return out
