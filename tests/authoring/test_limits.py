"""Channel measurements: X weighted length (the official conformance file), SMS segments."""

from __future__ import annotations

import pytest
import yaml

from broadcaster.authoring.limits import FACEBOOK_LIMIT, measure, over_limit
from broadcaster.authoring.render import render_one
from broadcaster.authoring.variables import parse_values
from tests.conftest import SHARED

CONFORMANCE = SHARED / "conformance" / "twitter-text" / "validate.yml"
SECTIONS = ("WeightedTweetsWithDiscountedEmojiCounterTest", "UnicodeDirectionalMarkerCounterTest")


def conformance_cases():
    if not CONFORMANCE.exists():
        return [
            pytest.param(
                None,
                None,
                marks=pytest.mark.skip(
                    reason=f"{CONFORMANCE} is absent (clone outside the project)"
                ),
            )
        ]
    tests = yaml.safe_load(CONFORMANCE.read_text(encoding="utf-8"))["tests"]
    return [
        pytest.param(section, case, id=f"{section}:{case['description']}")
        for section in SECTIONS
        for case in tests[section]
    ]


@pytest.mark.parametrize(("section", "case"), conformance_cases())
def test_x_weighted_length_passes_twitter_text_conformance(section, case):
    metrics = measure("x", case["text"])
    assert metrics["weighted_length"] == case["expected"]["weightedLength"]
    # A post X would refuse (too long, or characters it does not accept) is a blocking finding.
    refused = over_limit("x", metrics, sms_max_segments=4) is not None
    assert refused == (not case["expected"]["valid"]) or not case["text"]


def test_conformance_file_has_the_sections_we_rely_on():
    if not CONFORMANCE.exists():
        pytest.skip(f"{CONFORMANCE} is absent (clone outside the project)")
    tests = yaml.safe_load(CONFORMANCE.read_text(encoding="utf-8"))["tests"]
    assert all(len(tests[s]) > 0 for s in SECTIONS)


def test_x_counts_urls_as_23_and_emoji_as_2():
    assert (
        measure("x", "https://www.riversideusd.org/alerts/very/long/path/" + "a" * 80)[
            "weighted_length"
        ]
        == 23
    )
    assert measure("x", "😀")["weighted_length"] == 2
    assert measure("x", "学校")["weighted_length"] == 4


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("€" * 80, "GSM-7", 1),  # each extension character is two septets
        ("€" * 81, "GSM-7", 2),
        ("^{}[]~|\\" + "a" * 144, "GSM-7", 1),  # 8 x 2 + 144 = 160
        ("a" * 152 + "€" + "a" * 10, "GSM-7", 2),  # the escape pair is not split
        ("ñÑüÜéÉ" + "a" * 154, "GSM-7", 1),  # these accents are in the GSM alphabet
        ("á" * 70, "UCS-2", 1),
        ("á" * 71, "UCS-2", 2),
        ("á" * 134, "UCS-2", 2),
        ("á" * 135, "UCS-2", 3),
        ("😀" * 35, "UCS-2", 1),  # a surrogate pair is two UTF-16 units
        ("😀" * 36, "UCS-2", 2),
        ("", "GSM-7", 0),
    ],
)
def test_sms_encoding_and_segments(text, encoding, segments):
    metrics = measure("sms", text)
    assert (metrics["encoding"], metrics["segments"]) == (encoding, segments)


def test_one_non_gsm_character_turns_the_whole_text_ucs2_and_is_named():
    metrics = measure("sms", "School is closed today " + "a" * 50 + " ✓ gracias")
    assert metrics["encoding"] == "UCS-2"
    assert metrics["ucs2_chars"] == ["✓"]
    assert metrics["segments"] == 2  # 84 characters > 70


def test_spanish_sms_with_accent_reports_ucs2_and_the_right_segments(district, catalog):
    template = catalog.get("school_closure")
    values = parse_values(
        template,
        {
            "schools": "lincoln-hs",
            "date": "2026-03-03",
            "reason": "a storm",
            "reason.es": "una tormenta de nieve y hielo en las carreteras del área",
        },
        district,
    )
    text = render_one(template, values, district, "sms", "es", "actual").text
    assert "á" in text
    metrics = measure("sms", text)
    assert metrics["encoding"] == "UCS-2"
    assert "á" in metrics["ucs2_chars"]
    units = len(text.encode("utf-16-le")) // 2
    expected = 1 if units <= 70 else -(-units // 67)
    assert metrics["segments"] == expected
    assert metrics["segments"] >= 2


def test_facebook_limit():
    assert over_limit("facebook", measure("facebook", "a" * FACEBOOK_LIMIT), 4) is None
    assert "63206" in over_limit("facebook", measure("facebook", "a" * (FACEBOOK_LIMIT + 1)), 4)


def test_sms_over_the_district_segment_limit_is_refused_with_the_reason():
    reason = over_limit("sms", measure("sms", "á" * 300), sms_max_segments=4)
    assert reason is not None and "5 UCS-2 segments" in reason and "á" in reason
