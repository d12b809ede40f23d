"""The keywords a family texts back (STOP, START, HELP) in every language the district may
publish, and the replies to them in that language (issue 14, item 3).

A text is a keyword when, folded, it is one of a language's words for an action: folding undoes
what a phone or a person adds around a word (letter case, full-width forms, invisible
characters, surrounding punctuation and spaces) and, for matching only, accents and Arabic's
diacritics and letter variants (so "DUNG" is "DỪNG" and "الغاء" is "إلغاء"). Twilio's own
opt-out handling (Advanced Opt-Out) was the reference for the English and Spanish lists; the
other languages' words are this project's drafts, like their replies.

The replies live in sms_replies.toml, one table per language with `reviewed`: false until a
district reviewer has signed that language off (`unreviewed` lists those, for doctor). A
keyword in a language other than English is answered in that language; an English one in the
language of the contact who sent it, when the district knows it and has replies in it.
"""

from __future__ import annotations

import tomllib
import unicodedata
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Literal

Action = Literal["stop", "start", "help"]
REPLIES = Path(__file__).with_name("sms_replies.toml")
MAX_KEYWORD = 40  # longer texts are messages, never keywords

# action -> language -> words, as people type them (folded when compared).
WORDS: dict[Action, dict[str, tuple[str, ...]]] = {
    "stop": {
        "en": ("stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "opt out"),
        "es": ("alto", "parar", "detener", "cancelar", "baja"),
        "vi": ("dừng", "ngừng", "hủy"),
        "zh": ("停止", "退订", "取消"),
        "ar": ("توقف", "إلغاء", "إيقاف"),
        "so": ("jooji", "ka bax"),
    },
    "start": {
        "en": ("start", "unstop", "yes"),
        "es": ("inicio", "iniciar", "comenzar", "alta"),
        "vi": ("bắt đầu",),
        "zh": ("开始", "订阅"),
        "ar": ("ابدأ", "بدء"),
        "so": ("bilow",),
    },
    "help": {
        "en": ("help", "info"),
        "es": ("ayuda",),
        "vi": ("giúp", "trợ giúp"),
        "zh": ("帮助",),
        "ar": ("مساعدة",),
        "so": ("caawi", "caawin"),
    },
}
_ARABIC_LETTERS = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ة": "ه"})


@dataclass(frozen=True)
class Keyword:
    action: Action
    language: str  # the language of the word texted
    word: str = ""  # as texted, folded (what the ledger records)


def fold(text: str) -> str:
    """The text as compared: compatibility forms, no invisible characters, case folded,
    accents and Arabic diacritics dropped, letter variants unified, surrounding punctuation
    and spaces removed, inner spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("đ", "d").replace("ـ", "")
    kept = "".join(
        c
        for c in unicodedata.normalize("NFD", text)
        if unicodedata.category(c) not in ("Mn", "Cf", "Cc")
    )
    words = unicodedata.normalize("NFC", kept).translate(_ARABIC_LETTERS).split()
    joined = " ".join(words)
    start, end = 0, len(joined)
    while start < end and unicodedata.category(joined[start])[0] in "PS":
        start += 1
    while end > start and unicodedata.category(joined[end - 1])[0] in "PS":
        end -= 1
    return joined[start:end].strip()


@cache
def _index() -> dict[str, Keyword]:
    index: dict[str, Keyword] = {}
    for action, languages in WORDS.items():
        for language, words in languages.items():
            for word in words:
                index.setdefault(fold(word), Keyword(action, language))
    return index


def classify(body: str) -> Keyword | None:
    """The keyword a text is, or None for any other text."""
    if len(body) > MAX_KEYWORD:
        return None
    word = fold(body)
    found = _index().get(word)
    return None if found is None else replace(found, word=word)


@cache
def _replies() -> dict[str, dict[str, object]]:
    with REPLIES.open("rb") as handle:
        return tomllib.load(handle)


def unreviewed() -> list[str]:
    """Languages whose replies no district reviewer has signed off yet."""
    return [lang for lang, table in _replies().items() if not table.get("reviewed", False)]


def reply_language(keyword: Keyword, contact_language: str | None) -> str:
    """Whom to answer in which language: a non-English keyword in its own; an English one in
    the contact's language, if there are replies in it; else English."""
    if keyword.language != "en":
        return keyword.language
    if contact_language in _replies():
        return contact_language
    return "en"


def reply(action: Action, language: str, **values: str) -> str:
    """The reply to `action` in `language`, with the district's `short_name`, `name` and
    `contact` filled in."""
    template = str(_replies()[language][action])
    return template.format(**values)
