"""Each policy check, with text that should and should not trip it."""

from __future__ import annotations

import pytest

from broadcaster.authoring.checks import check_rendition, personal_data_spans
from broadcaster.authoring.limits import measure
from tests.conftest import closure_vars

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


# Characters that show nothing: zero-width space, non-joiner and joiner, word joiner, the BOM
# (zero-width no-break space) and the soft hyphen.
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"]
# Bidi isolates and embeddings (refused in typed values, but a template file or a stored draft
# can still carry them to the checks).
BIDI = [("\u2066", "\u2069"), ("\u2067", "\u2069"), ("\u2068", "\u2069"), ("\u202a", "\u202c")]
BIDI += [("\u202b", "\u202c"), ("\u202e", "\u202c")]


def hidden(text: str, after: int) -> list[str]:
    """The text with each invisible character typed after its first `after` characters."""
    return [text[:after] + c + text[after:] for c in INVISIBLE]


DISGUISED = [
    # Blocklisted words: invisible characters, look-alike letters, fullwidth forms, bidi.
    *[(t, ("blocklist", "block")) for t in hidden("Don't be stupid", 12)],
    *[(t, ("blocklist", "block")) for t in hidden("What an idiot", 10)],
    ("Don't be stup\u0456d", ("blocklist", "block")),  # Cyrillic і
    ("Don't be \u0455tupid", ("blocklist", "block")),  # Cyrillic ѕ
    ("d\u0430mn this snow", ("blocklist", "block")),  # Cyrillic а
    ("what an idi\u03bft", ("blocklist", "block")),  # Greek ο
    ("DON'T BE STUP\u0399D", ("blocklist", "block")),  # Greek capital iota
    ("\u0406DIOT", ("blocklist", "block")),  # Cyrillic capital І
    ("\uff53\uff54\uff55\uff50\uff49\uff44", ("blocklist", "block")),  # fullwidth
    *[(f"Don't be {a}stupid{b}", ("blocklist", "block")) for a, b in BIDI],
    *[(f"Don't be stu{a}pid{b}", ("blocklist", "block")) for a, b in BIDI],
    # E-mail addresses.
    *[(t, ("personal_email", "block")) for t in hidden("Write to coach.smith@gmail.com", 22)],
    *[(t, ("personal_email", "block")) for t in hidden("Write to coach.smith@gmail.com", 14)],
    ("Write to coach.smith@gm\u0430il.com", ("personal_email", "block")),
    ("Write to coach@riversideusd.\u043erg", ("personal_email", "block")),  # not the district's
    ("Write to \uff43\uff4f\uff41\uff43\uff48\uff20gmail.com", ("personal_email", "block")),
    # Dates of birth.
    *[(t, ("date_of_birth", "block")) for t in hidden("Born on March 3, 2015", 1)],
    ("born 3/3/2015", ("date_of_birth", "block")),
    ("\u0412orn on \u041carch 3, 2015", ("date_of_birth", "block")),  # Cyrillic В, М
    ("\uff42\uff4f\uff52\uff4e \uff13/\uff13/\uff12\uff10\uff11\uff15", ("date_of_birth", "block")),
    ("D\u200bOB 03/04/2014", ("date_of_birth", "block")),
    ("nac\u00adida el 3 de marzo de 2015", ("date_of_birth", "block")),
    *[(f"{a}born on March 3, 2015{b}", ("date_of_birth", "block")) for a, b in BIDI],
    # Social Security numbers.
    ("SSN 123456789", ("ssn", "block")),
    ("SSN: 123-45-6789", ("ssn", "block")),
    ("ssn#123456789", ("ssn", "block")),
    ("Social Security number 123 45 6789", ("ssn", "block")),
    *[(t, ("ssn", "block")) for t in hidden("SSN 123456789", 1)],
    ("S\u0405N 123456789", ("ssn", "block")),  # Cyrillic Ѕ
    ("\uff11\uff12\uff13-\uff14\uff15-\uff16\uff17\uff18\uff19", ("ssn", "block")),
    ("\u0661\u0662\u0663-\u0664\u0665-\u0666\u0667\u0668\u0669", ("ssn", "block")),  # Arabic
    ("123-45-67\u200b89", ("ssn", "block")),
    # Student IDs.
    ("Student #4567890", ("student_id", "block")),
    ("student ID 4567890", ("student_id", "block")),
    ("Student ID: 4567890", ("student_id", "block")),
    ("ID# 4567890", ("student_id", "block")),
    ("Student No. 4567890", ("student_id", "block")),
    ("número de estudiante 4567890", ("student_id", "block")),
    ("Estudiante n.º 4567890", ("student_id", "block")),
    *[(t, ("student_id", "block")) for t in hidden("Pick up S1234567 today", 9)],
    ("Pick up \uff33\uff11\uff12\uff13\uff14\uff15\uff16\uff17", ("student_id", "block")),
    ("St\u200budent #4567890", ("student_id", "block")),
    # Names from the roster, and phone numbers.
    ("Congratulations to M\u0430ria Gonzalez", ("student_name", "block")),
    *[(t, ("student_name", "block")) for t in hidden("Maria Gonzalez", 8)],
    *[(t, ("personal_phone", "block")) for t in hidden("Call (951) 555-0123", 14)],
    (
        "Call \uff08\uff19\uff15\uff11\uff09 \uff15\uff15\uff15-\uff10\uff11\uff12\uff13",
        ("personal_phone", "block"),
    ),
]


@pytest.mark.parametrize(("text", "expected"), DISGUISED, ids=ascii)
def test_invisible_look_alike_and_fullwidth_characters_hide_nothing(district, text, expected):
    assert expected in findings(district, text)
    assert expected in findings(district, f"<p>{text}</p>", "web")


LINK_TRICKS = [
    # A host that only looks allowlisted: the reader's link may stop at the invisible character.
    *[(f"https://evil.example{c}.riversideusd.org/x", "link_invisible") for c in INVISIBLE],
    *[(f"https://www.riversideusd.org/ale{c}rts", "link_invisible") for c in INVISIBLE],
    ("ht\u200btps://www.riversideusd.org/alerts", "link_invisible"),
    # IP literals, in every notation a browser follows.
    ("http://203.0.113.7/closures", "link_ip"),
    ("https://[2001:db8::1]/x", "link_ip"),
    ("https://3405803783/x", "link_ip"),  # 203.0.113.7 as one number
    ("https://0xcb.0x0.0x71.0x7/x", "link_ip"),
    ("https://0313.0.0161.07/x", "link_ip"),
    ("https://203.113.7/x", "link_ip"),
    # Punycode and non-ASCII host names.
    ("https://xn--80ak6aa92e.com/x", "link_idn"),
    ("https://www.riversideusd.\u043erg/alerts", "link_idn"),  # Cyrillic о
    ("https://r\u0456versideusd.org/", "link_idn"),  # Cyrillic і
    ("https://espa\u00f1a.example/", "link_idn"),
]


@pytest.mark.parametrize(("link", "check"), LINK_TRICKS, ids=ascii)
def test_links_that_only_look_safe_are_blocked_and_not_allowlisted(district, link, check):
    for channel, text in [
        ("facebook", f"Updates: {link} today"),
        ("x", f"Updates: {link}"),
        ("web", f'<p><a href="{link}">district updates</a></p>'),
    ]:
        found = check_rendition(district, channel, "en", text, measure(channel, text))
        by_check = {f.check: f for f in found}
        assert by_check[check].severity == "block", (channel, found)
        assert "link_allowlist" in by_check, (channel, found)
        # The link is quoted as typed, its invisible and look-alike characters made visible.
        shown = by_check[check].detail
        assert not [c for c in INVISIBLE if c in shown]
        if check == "link_invisible":
            assert "<U+" in shown and "U+" in shown.split("(")[1]


def test_an_allowlisted_internationalized_name_is_not_blocked(district):
    custom = district.model_copy(
        update={"policy": district.policy.model_copy(update={"link_allowlist": ["españa.example"]})}
    )
    assert findings(custom, "See https://espa\u00f1a.example/x") == []
    assert findings(custom, "See https://xn--espaa-rta.example/x") == []


@pytest.mark.parametrize(
    "text",
    [
        "Darn, the game is off",  # "rn" looks like "m", but "darn" is not "damn"
        "Zoom meeting ID 84512345678",
        "Students: 1200 enrolled; Route 12 runs 30 minutes late",
        "Student ID cards for the 2026 school year",
        "Familias \U0001f468\u200d\U0001f469\u200d\U0001f467 bienvenidas",  # a ZWJ emoji
        "José Núñez Park is closed",  # accents are fine; first and last name of the roster
        "Call +1 951-555-0100 or write to communications@riversideusd.org",
    ],
)
def test_ordinary_text_with_unicode_is_not_flagged(district, text):
    assert [f for f in findings(district, text) if f[0] != "student_name"] == []


def test_findings_show_what_was_typed_without_repeating_personal_data(district):
    text = "Don't be stup\u0456d. B\u200born on March 3, 2015, SSN 123\u200b456789"
    details = {
        f.check: f.detail for f in check_rendition(district, "x", "en", text, measure("x", text))
    }
    assert "'stup<U+0456>d'" in details["blocklist"]
    assert "U+0456 CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I" in details["blocklist"]
    assert details["date_of_birth"].endswith("written with U+200B ZERO WIDTH SPACE")
    assert details["ssn"].endswith("written with U+200B ZERO WIDTH SPACE")
    assert "456789" not in details["ssn"] and "2015" not in details["date_of_birth"]


def test_personal_data_spans_are_where_the_author_typed_it(district):
    text = "B\u200born on March 3, 2015 and SSN 123456789 for M\u0430ria Gonz\u00e1\u200blez"
    spans = {check: text[start:end] for check, start, end in personal_data_spans(district, text)}
    assert spans == {
        "date_of_birth": "B\u200born on March 3, 2015",
        "ssn": "123456789",
        "student_name": "M\u0430ria Gonz\u00e1\u200blez",
    }


@pytest.mark.parametrize(
    ("reason", "check"),
    [
        ("a stu\u200bpid prank", "blocklist"),
        ("an id\u0456ot's prank", "blocklist"),
        ("B\u200born on March 3, 2015", "date_of_birth"),
        ("Student #4567890", "student_id"),
        ("SSN 123456789", "ssn"),
        ("see https://evil.example\u200b.riversideusd.org/x", "link_invisible"),
        ("see http://203.0.113.7/x", "link_ip"),
        ("see https://xn--80ak6aa92e.com/x", "link_idn"),
    ],
    ids=ascii,
)
def test_the_cli_refuses_to_submit_a_disguised_draft(run, tokens, reason, check):
    draft = run.json(
        "compose", "school_closure", "--as", "ana", *closure_vars(reason), token=tokens["ana"]
    )
    assert (check, "block") in {(f["check"], f["severity"]) for f in draft["findings"]}
    shown = run(
        "compose", "school_closure", "--as", "ana", *closure_vars(reason), token=tokens["ana"]
    )
    assert shown.exit_code == 0 and "cannot be submitted" in shown.stdout and check in shown.stdout
    result = run("submit", str(draft["id"]), "--as", "ana", token=tokens["ana"])
    assert result.exit_code == 2
    assert "blocking finding" in result.stderr and check in result.stderr
    assert run.json("show", str(draft["id"]))["state"] == "draft"


OTHER_LANGUAGES = [
    ("学生证号 1234567。", "student_id"),
    ("学号：1234567", "student_id"),
    ("Mã số học sinh 4567890", "student_id"),
    ("رقم الطالب ٤٥٦٧٨٩٠", "student_id"),
    ("Lambarka ardayga 4567890", "student_id"),
    ("社会安全号码123-45-6789", "ssn"),  # no space between the word and the number
    ("số an sinh xã hội 123456789", "ssn"),
    ("出生日期2015年3月4日", "date_of_birth"),
    ("Ngày sinh: 04/03/2015", "date_of_birth"),
    ("تاريخ الميلاد ٠٤/٠٣/٢٠١٥", "date_of_birth"),
    ("Taariikhda dhalashada 3/4/2015", "date_of_birth"),
]


@pytest.mark.parametrize(("text", "check"), OTHER_LANGUAGES, ids=ascii)
def test_personal_numbers_are_found_in_the_districts_other_languages(district, text, check):
    assert (check, "block") in findings(district, text)


def test_a_school_year_in_chinese_is_not_a_date_of_birth(district):
    assert findings(district, "2025年3月4日学校停课。") == []
