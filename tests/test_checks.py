"""Each policy check, with text that should and should not trip it."""

from __future__ import annotations

import pytest

from broadcaster.checks import check_rendition
from broadcaster.limits import measure

CLEAN = "Lincoln High School is closed today. Updates: https://www.riversideusd.org/alerts"


def findings(district, text, channel="facebook"):
    return [
        (f.check, f.severity)
        for f in check_rendition(district, channel, "en", text, measure(channel, text))
    ]


def test_clean_text_has_no_findings(district):
    assert findings(district, CLEAN) == []
    assert findings(district, CLEAN, "x") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Pick up S1234567 at the office", ("student_id", "block")),
        ("Student s7654321 was found", ("student_id", "block")),
        ("SSN 123-45-6789 on file", ("ssn", "block")),
        ("DOB 03/04/2014", ("date_of_birth", "block")),
        ("born on March 4, 2014", ("date_of_birth", "block")),
        ("fecha de nacimiento: 4 de marzo de 2014", ("date_of_birth", "block")),
        ("Call his mom at (951) 555-0123", ("personal_phone", "block")),
        ("Text 951.555.0177 for rides", ("personal_phone", "block")),
        ("Write to coach.smith@gmail.com", ("personal_email", "block")),
        ("Congratulations to Maria Gonzalez!", ("student_name", "block")),
        ("Whitaker, James won the spelling bee", ("student_name", "block")),
        ("felicidades a JOSE NUNEZ", ("student_name", "block")),  # case and accents folded
        ("See http://www.riversideusd.org/alerts", ("link_https", "warn")),
        ("See https://bit.ly/xyz", ("link_allowlist", "warn")),
        ("See example.com/closures", ("link_allowlist", "warn")),
        ("Don't be stupid, stay home", ("blocklist", "block")),
        ("Don't be STUPID", ("blocklist", "block")),
    ],
)
def test_each_check_finds_what_it_is_for(district, text, expected):
    assert expected in findings(district, text)


@pytest.mark.parametrize(
    "text",
    [
        "Call the district at +1 951-555-0100 or Lincoln at (951) 555-0110",  # the district's own
        "Write to communications@riversideusd.org",  # a district address
        "Classes resume 2026-03-04 at 10:30 AM; Route 12 runs 30 minutes late",  # not PII
        "Maria and James both love Gonzalez Park",  # first names alone are not a student's name
        "Our stupidity-free zone",  # a word inside another is not the blocklisted word
        "Student ID cards: bring yours (7 digits)",
        "https://alerts.riversideusd.org/today",  # a subdomain of an allowlisted domain
    ],
)
def test_ordinary_district_text_is_not_flagged(district, text):
    assert [f for f in findings(district, text) if f[0] != "link_allowlist"] == []


def test_findings_do_not_repeat_the_personal_information(district):
    text = "SSN 123-45-6789, call 951-555-0123, S1234567, coach.smith@gmail.com, Maria Gonzalez"
    details = " ".join(
        f.detail for f in check_rendition(district, "x", "en", text, measure("x", text))
    )
    for secret in ("123-45-6789", "555-0123", "S1234567", "coach.smith", "Maria", "Gonzalez"):
        assert secret not in details


def test_web_images_need_alt_text_and_links_are_checked(district):
    html = '<p>Map: <img src="/map.png"> <a href="http://maps.example.com">route</a></p>'
    found = findings(district, html, "web")
    assert ("image_alt", "block") in found
    assert ("link_https", "warn") in found and ("link_allowlist", "warn") in found
    ok = '<p><img src="/map.png" alt="Map of the detour"> <a href="https://www.riversideusd.org/map">map</a></p>'
    assert findings(district, ok, "web") == []


def test_html_entities_do_not_hide_a_name(district):
    assert ("student_name", "block") in findings(district, "<p>Maria&nbsp;Gonzalez</p>", "web")


def test_over_limit_renditions_block(district):
    assert ("over_limit", "block") in findings(district, "a" * 281, "x")
    assert ("over_limit", "block") in findings(district, "á" * 300, "sms")
    assert findings(district, "a" * 280, "x") == []


def test_the_student_id_pattern_is_the_districts(district):
    custom = district.model_copy(
        update={
            "policy": district.policy.model_copy(update={"student_id_pattern": r"\bID-\d{4}\b"})
        }
    )
    assert ("student_id", "block") in findings(custom, "ID-1234 is missing")
    assert ("student_id", "block") not in findings(custom, "s7654321 is missing")
