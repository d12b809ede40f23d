"""Which characters a value may hold: the rules in one place, checked at every way in and
applied by every writer of a public document.

Two kinds of code point are refused in anything a person types (template variables and their
translations, reasons, the contacts CSV, the district config, template files):

- those XML 1.0 cannot carry, or carries only as junk. One of them in an alert would make its
  feeds and its CAP document unparseable for everyone, for as long as the alert is kept.
- bidirectional embeddings, overrides and isolates, which make text display in another order than
  the one it has (the "Trojan Source" trick, CVE-2021-42574): an approver would read one message
  and the public another.

The bidi *marks* (U+200E LRM, U+200F RLM, U+061C ALM) are allowed: Arabic, Hebrew, Farsi and
Urdu text needs them to show numbers, times and punctuation the right way round; they only set
the direction of the neutral characters beside them, never reorder a run of text or open a state
that leaks into what follows; and the policy checks read a form with default-ignorable code
points (marks included) removed, so a mark cannot hide a word from them.

Writers pass what they read back through `clean_for_xml`, so a row stored before these rules (or
by a path that skipped them) costs one replaced character, never a whole feed.

The ranges are listed here rather than taken from a library: XML 1.0 (the `Char` production) and
the Unicode standard (noncharacters, §23.7; bidi controls, UAX #9) fix them for good, and
`unicodedata` has no property for noncharacters or bidi controls.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from pydantic import BaseModel, field_validator

from broadcaster.core.errors import BadInput, Needed

Ranges = tuple[tuple[int, int], ...]

# Tab, line feed and carriage return are XML characters (and a browser sends every line break of
# a form as CR LF): a one-line field refuses them itself. C1 controls and DEL are legal XML 1.0
# but mean nothing in text (XML 1.0 discourages them, XML 1.1 restricts them); U+FFFE/U+FFFF,
# which XML excludes, are here with the rest of the noncharacters.
XML_UNSAFE: dict[str, Ranges] = {
    "a control character": ((0x00, 0x08), (0x0B, 0x0C), (0x0E, 0x1F), (0x7F, 0x9F)),
    "a lone surrogate (half of a UTF-16 pair)": ((0xD800, 0xDFFF),),
    "a noncharacter": (
        (0xFDD0, 0xFDEF),
        *((plane + 0xFFFE, plane + 0xFFFF) for plane in range(0, 0x110000, 0x10000)),
    ),
}
BIDI_CONTROLS: dict[str, Ranges] = {
    "a bidirectional embedding or override": ((0x202A, 0x202E),),
    "a bidirectional isolate": ((0x2066, 0x2069),),
}
REFUSED = {**XML_UNSAFE, **BIDI_CONTROLS}
# Why a kind is refused, as the end of "a noncharacter, which ...".
WHY = {
    **dict.fromkeys(XML_UNSAFE, "no feed or CAP document can carry"),
    **dict.fromkeys(BIDI_CONTROLS, "can make text display differently from what it says"),
}
REPLACEMENT = "\ufffd"  # what a writer shows instead of a character it cannot carry


def _char_class(ranges: Ranges) -> str:
    return "[" + "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in ranges) + "]"


_KINDS = list(REFUSED)
# One group per kind, so that a match says which kind it found.
_REFUSED = re.compile(
    "|".join(f"(?P<k{i}>{_char_class(REFUSED[kind])})" for i, kind in enumerate(_KINDS))
)
_XML_UNSAFE = re.compile(_char_class(tuple(span for r in XML_UNSAFE.values() for span in r)))


def problem(value: str) -> str | None:
    """What is wrong with a typed value and how to fix it, or None when it may be kept."""
    found = _REFUSED.search(value)
    if found is None:
        return None
    char, kind = found.group(), _KINDS[int(str(found.lastgroup)[1:])]
    name = unicodedata.name(char, "")
    return (
        f"contains U+{ord(char):04X}{f' {name}' if name else ''} at character {found.start() + 1}: "
        f"{kind}, which {WHY[kind]}; remove it"
    )


def check_text(field: str, value: str) -> str:
    """The value unchanged, or BadInput naming the field and the character."""
    wrong = problem(value)
    if wrong is not None:
        raise BadInput(f"{field}: {wrong}")
    return value


def check_reason(field: str, value: str, missing: str, needed: Needed | None = None) -> str:
    """A reason a person gives (for a rejection, a retraction, a hold, ...): stripped and
    checked like any typed text; BadInput saying `missing` (and `needed`, the field each front
    door asks for) when nothing is left."""
    reason = check_text(field, value.strip())
    if not reason:
        raise BadInput(missing, needed)
    return reason


def check_all(value: Any) -> Any:
    """For pydantic validators: every string in the value (list items, dict keys and values)
    checked; raises ValueError, which pydantic reports with the field's location."""
    if isinstance(value, str):
        wrong = problem(value)
        if wrong is not None:
            raise ValueError(wrong)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            check_all(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_all(key)
            check_all(item)
    return value


def clean_for_xml(text: str) -> str:
    """The text with every character XML cannot carry replaced by U+FFFD: for writers of
    documents built from rows that are already stored."""
    return _XML_UNSAFE.sub(REPLACEMENT, text)


def replace_refused(text: str) -> str:
    """The text with every character a person may not type replaced by U+FFFD: for text from
    outside that is kept rather than refused (a family's reply to a text)."""
    return _REFUSED.sub(REPLACEMENT, text)


class CheckedText(BaseModel):
    """A model whose every string (in lists and dicts too, keys included) is checked as typed
    text: the district config and template metadata."""

    @field_validator("*")
    @classmethod
    def _typed_text(cls, value: Any) -> Any:
        return check_all(value)
