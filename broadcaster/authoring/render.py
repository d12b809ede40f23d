"""Render a template for each channel and language in Jinja's sandbox.

Templates are trusted district files; variable values are not, so they reach Jinja only as
already-parsed strings (see variables.py) and are never compiled. Web output is HTML and is
autoescaped; the other channels are plain text.

A voice rendition is read aloud by a speech engine, so its variables take their spoken forms
(variables.display_values with spoken=True: times in words, "one thirty in the afternoon", "la una
y media de la tarde") and a rehearsal's marker is a sentence, not a bracketed tag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from broadcaster.authoring.catalog import Template
from broadcaster.authoring.variables import display_values
from broadcaster.core.config import DistrictConfig
from broadcaster.core.config_fields import to_e164
from broadcaster.core.errors import BadInput
from broadcaster.core.states import MessageKind

# A visible marker on every rendition of a message that is not for real, "TEST" first in every
# language. Plain ASCII where the language allows: one character outside the GSM alphabet (an en
# dash) would make every English, Spanish or Somali test SMS UCS-2. Beyond English and Spanish,
# drafts for the district's reviewer, like the template translations.
KIND_PREFIX: dict[str, dict[str, str]] = {
    MessageKind.TEST: {
        "en": "[TEST]",
        "es": "[TEST - PRUEBA]",
        "vi": "[TEST - THỬ NGHIỆM]",
        "zh": "[TEST - 测试]",
        "ar": "[TEST - اختبار]",
        "so": "[TEST - TIJAABO]",
    },
    MessageKind.EXERCISE: {
        "en": "[TEST - EXERCISE]",
        "es": "[TEST - SIMULACRO]",
        "vi": "[TEST - DIỄN TẬP]",
        "zh": "[TEST - 演习]",
        "ar": "[TEST - تمرين]",
        "so": "[TEST - LAYLI]",
    },
}
# The same marker said aloud, first in every voice rendition of a rehearsal (no Somali: no voice
# speaks it, channel_adapters/voice.py).
SPOKEN_KIND_PREFIX: dict[str, dict[str, str]] = {
    MessageKind.TEST: {
        "en": "This is a test.",
        "es": "Esto es una prueba.",
        "vi": "Đây là tin nhắn thử nghiệm.",
        "zh": "这是一条测试消息。",
        "ar": "هذه رسالة تجريبية.",
    },
    MessageKind.EXERCISE: {
        "en": "This is an exercise, only a test.",
        "es": "Este es un simulacro, solo una prueba.",
        "vi": "Đây là một cuộc diễn tập, chỉ là thử nghiệm.",
        "zh": "这是一次演习，仅为测试。",
        "ar": "هذا تمرين، مجرد اختبار.",
    },
}
SPOKEN_CHANNELS = ("voice",)
# An e-mail rendition's first line: its subject, then an empty line and the body
# (channel_adapters.email.split_rendition).
SUBJECT = "Subject: "
KINDS = tuple(kind.value for kind in MessageKind)
_BLANK_RUNS = re.compile(r"\n{3,}")


def _environment(autoescape: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        undefined=StrictUndefined, autoescape=autoescape, trim_blocks=True, lstrip_blocks=True
    )
    # `capitalize` lower-cases the rest ("Lincoln high school"); names must keep their capitals.
    env.filters["upfirst"] = lambda text: text[:1].upper() + text[1:] if text else text
    return env


_TEXT_ENV = _environment(autoescape=False)
_HTML_ENV = _environment(autoescape=True)


@dataclass(frozen=True)
class Rendition:
    channel: str
    locale: str
    text: str


def render_all(
    template: Template,
    values: dict[str, Any],
    district: DistrictConfig,
    channels: list[str],
    locales: list[str],
    kind: str,
) -> list[Rendition]:
    """One rendition per channel × locale that the template provides."""
    renditions = []
    for channel in channels:
        for locale in locales:
            if (channel, locale) in template.sources:
                renditions.append(render_one(template, values, district, channel, locale, kind))
    return renditions


def render_one(
    template: Template,
    values: dict[str, Any],
    district: DistrictConfig,
    channel: str,
    locale: str,
    kind: str,
) -> Rendition:
    context = {
        **display_values(template, values, district, locale, spoken=channel in SPOKEN_CHANNELS),
        "district": {
            "name": district.district.name,
            "short_name": district.district.short_name,
            "alerts_url": district.district.alerts_url,
            "phone": district.district.phone,
            "phone_tel": to_e164(district.district.phone or "", district.district.phone_region),
        },
    }
    env = _HTML_ENV if channel == "web" else _TEXT_ENV
    try:
        text = env.from_string(template.sources[(channel, locale)]).render(context)
    except TemplateError as exc:
        raise BadInput(f"template {template.name} {channel}.{locale}.j2 failed: {exc}") from None
    text = _tidy(text)
    spoken = channel in SPOKEN_CHANNELS
    prefix = (SPOKEN_KIND_PREFIX if spoken else KIND_PREFIX).get(kind, {})
    if prefix:
        marker = prefix.get(locale, prefix["en"])
        if channel == "web":
            text = f'<p class="kind-notice"><strong>{escape(marker)}</strong></p>\n{text}'
        elif channel == "email" and text.startswith(SUBJECT):
            # In the subject, where a reader sees it first; the line stays the subject line.
            text = f"{SUBJECT}{marker} {text.removeprefix(SUBJECT).lstrip()}"
        else:
            text = f"{marker} {text}"
    return Rendition(channel, locale, text)


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines))
