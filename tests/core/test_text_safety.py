"""Nothing an author types can break a feed, and no bidi control hides what a value says.

Characters XML cannot carry (and bidi embeddings, overrides and isolates) are refused at every
way in with one line naming the field and nothing written: CLI, API, console, the contacts CSV,
the district config, template files. A row stored before the rules is cleaned by the writers:
every feed, page and CAP document still answers and parses.
"""

from __future__ import annotations

import io
import shutil

import lxml.html
import pytest
from lxml import etree
from sqlalchemy import select, update

from broadcaster.authoring.catalog import load_template
from broadcaster.authoring.variables import parse_values
from broadcaster.core import text_safety
from broadcaster.core.config import BUILTIN_TEMPLATES, SAMPLE_CONFIG, load_district
from broadcaster.core.errors import BadInput
from broadcaster.core.models import Approval, Contact, Message, Rendition
from tests.api_client import CLOSURE, Api, counts
from tests.conftest import Cli, closure_vars
from tests.public_site import closure

# One of each kind, at the edges of its ranges.
REFUSED = {
    "NUL": "\x00",
    "backspace": "\x08",
    "vertical tab": "\x0b",
    "unit separator": "\x1f",
    "delete": "\x7f",
    "next line (C1)": "\x85",
    "last C1": "\x9f",
    "first noncharacter": "\ufdd0",
    "U+FFFE": "\ufffe",
    "U+FFFF": "\uffff",
    "plane 1 noncharacter": "\U0001fffe",
    "last code point": "\U0010ffff",
    "LRE": "\u202a",
    "RLO": "\u202e",
    "LRI": "\u2066",
    "PDI": "\u2069",
}
SURROGATE = "\ud800"  # only a way in that carries any str (JSON, the CLI in-process) has one
# A smaller sample for the slower ways in: each kind at least once.
SAMPLE = ["\x0b", "\x85", "\ufffe", "\U0010ffff", "\u202e", "\u2067"]
ALLOWED = ["\u200e", "\u200f", "\u061c", "\ufffd", "\ue000", "ﬁ", "❄️", "عاصفة", "\U00010000"]
PAGES = ("/", "/banner.js")
FEEDS = ("/feeds/alerts.rss", "/feeds/alerts.atom", "/feeds/cap.atom")


def point(char: str) -> str:
    return f"U+{ord(char):04X}"


def expected_refused(cp: int) -> bool:
    """The rule as the issue states it, written independently of text_safety's tables."""
    xml_char = (
        cp in (0x9, 0xA, 0xD)
        or 0x20 <= cp <= 0xD7FF
        or 0xE000 <= cp <= 0xFFFD
        or 0x10000 <= cp <= 0x10FFFF
    )
    c1_or_delete = 0x7F <= cp <= 0x9F
    noncharacter = 0xFDD0 <= cp <= 0xFDEF or cp & 0xFFFE == 0xFFFE
    bidi_control = 0x202A <= cp <= 0x202E or 0x2066 <= cp <= 0x2069
    return not xml_char or c1_or_delete or noncharacter or bidi_control


def test_the_rules_cover_every_code_point():
    wrong = [
        f"U+{cp:04X}"
        for cp in range(0x110000)
        if (text_safety.problem(chr(cp)) is not None) != expected_refused(cp)
    ]
    assert wrong == []


def test_cleaned_text_of_every_code_point_parses_as_xml():
    everything = "".join(chr(cp) for cp in range(0x110000))
    cleaned = text_safety.clean_for_xml(everything)
    element = etree.Element("a")
    element.text = cleaned  # lxml refuses a string XML cannot carry
    assert etree.fromstring(etree.tostring(element)).text == cleaned
    # One for one: what XML can carry is kept as it was.
    assert len(cleaned) == len(everything)
    assert all(
        c == k or (k == text_safety.REPLACEMENT and text_safety.problem(c))
        for c, k in zip(everything, cleaned, strict=True)
    )


@pytest.mark.parametrize("char", [*REFUSED.values(), SURROGATE], ids=[*REFUSED, "surrogate"])
def test_every_variable_and_translation_refuses_it_by_name(catalog, district, char):
    template = catalog.get("school_closure")
    good = {"schools": "all", "date": "2026-03-03", "reason": "snow"}
    for key in ("reason", "reason.es", "details", "schools", "date"):
        with pytest.raises(BadInput) as refused:
            parse_values(template, {**good, key: f"a{char}b"}, district)
        assert str(refused.value).startswith(f"variable {key!r}: contains {point(char)}")
        assert "\n" not in str(refused.value)


@pytest.mark.parametrize("value", ALLOWED)
def test_marks_and_other_text_are_kept(catalog, district, value):
    template = catalog.get("school_closure")
    parsed = parse_values(
        template, {"schools": "all", "date": "2026-03-03", "reason": f"a{value}b"}, district
    )
    assert value in parsed["reason"]


def test_a_tab_or_line_break_in_a_one_line_value_is_still_refused(catalog, district):
    template = catalog.get("school_closure")
    for value in ("a\tb", "a\nb", "a\rb"):
        with pytest.raises(BadInput, match="variable 'reason': contains a line break or tab"):
            parse_values(
                template, {"schools": "all", "date": "2026-03-03", "reason": value}, district
            )


# --- the ways in --------------------------------------------------------------------------------


def one_line_refusal(result, *says: str) -> None:
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for words in says:
        assert words in result.stderr, result.stderr


def test_the_cli_refuses_it_in_variables_and_reasons(run, tokens, compose_closure):
    admin = run.json("users", "add", "it")["token"]
    draft = compose_closure()
    mid = str(draft["id"])
    assert run("submit", mid, "--as", "ana", token=tokens["ana"]).exit_code == 0
    for char in (*SAMPLE, SURROGATE):  # the CLI runs in-process: any str reaches it
        for key in ("reason", "reason.es"):
            typed = {"reason": "snow", "reason.es": "nieve", key: f"storm{char}"}
            refused = run(
                "compose",
                "school_closure",
                *closure_vars(typed["reason"], typed["reason.es"], audience=None),
                "--as",
                "ana",
                token=tokens["ana"],
            )
            one_line_refusal(refused, f"variable {key!r}", point(char))
        refused = run("reject", mid, "--reason", f"wr{char}ong", "--as", "ben", token=tokens["ben"])
        one_line_refusal(refused, "reason:", point(char))
        refused = run(
            "records", "hold", "--message", mid, "--reason", f"au{char}dit", "--as", "dev",
            token=tokens["dev"],
        )  # fmt: skip
        one_line_refusal(refused, "reason:", point(char))
        issuer = f"https://sso.riversideusd.org/{char}realm"
        refused = run("users", "link", "ana", "--issuer", issuer, "--subject", "a1", "--as", "it",
                      token=admin)  # fmt: skip
        one_line_refusal(refused, "--issuer:", point(char))
    assert [m["id"] for m in run.json("list", token=tokens["ana"])] == [draft["id"]]
    assert run.json("users", "identities") == []
    assert run.json("show", mid, token=tokens["ana"])["state"] == "submitted"
    assert run.json("records", "holds", token=tokens["dev"]) == []


def test_the_cli_refuses_it_in_a_retraction_reason(run, tokens, site, session_factory):
    alert_id = site.publish(*closure("snow"))
    with session_factory() as session:
        mid = session.scalars(select(Message.id)).one()
        session.execute(update(Message).values(state="sent"))
    refused = run(
        "retract", str(mid), "--reason", "wrong\u202eday", "--as", "carmen", token=tokens["carmen"]
    )
    one_line_refusal(refused, "reason:", "U+202E")
    with session_factory() as session:
        assert session.get(Message, mid).state == "sent"
    assert site.get(f"/alerts/{alert_id}").status_code == 200


def test_the_api_refuses_it_with_422_naming_the_field(web_app, tokens, session_factory):
    api = Api(web_app())
    draft = api("POST", "/messages", tokens["ana"], CLOSURE).json()
    api("POST", f"/messages/{draft['id']}/submit", tokens["ana"])
    before = counts(session_factory)
    for char in ("\ufffe", "\x85", "\u202e", "\u2068"):
        for path in ("/messages", "/preview"):
            for key in ("reason", "reason.es"):
                body = {**CLOSURE, "variables": {**CLOSURE["variables"], key: f"storm{char}"}}
                refused = api("POST", path, tokens["ana"], body)
                assert refused.status_code == 422, refused.text
                said = refused.json()["error"]
                assert said.startswith(f"variable {key!r}: contains {point(char)}")
        reason = {"reason": f"x{char}y"}
        refused = api("POST", f"/messages/{draft['id']}/reject", tokens["ben"], reason)
        assert refused.status_code == 422
        assert refused.json()["error"].startswith(f"reason: contains {point(char)}")
    # JSON carries a lone surrogate as \\ud800: the body's own check refuses it, by field.
    body = {**CLOSURE, "variables": {**CLOSURE["variables"], "reason": SURROGATE}}
    refused = api("POST", "/messages", tokens["ana"], body)
    assert refused.status_code == 400 and refused.json()["error"].startswith("variables.reason:")
    assert counts(session_factory) == before
    assert api("GET", f"/messages/{draft['id']}", tokens["ana"]).json()["state"] == "submitted"


def test_the_console_refuses_it_beside_the_field(console, session_factory):
    from tests.web.test_console import closure_form, count, submitted

    ana = console.signed_in("ana")
    ben = console.signed_in("ben")
    message_id = submitted(ana, **{"reason.es": "nieve"})
    for char in ("\ufffe", "\x85", "\u2066"):
        ana.get("/console/compose?template=school_closure")
        form = closure_form(ana, reason=f"storm{char}")
        refused = ana.client.post("/console/compose", data=form)
        assert refused.status_code == 400
        page = refused.get_data(as_text=True)
        assert 'aria-describedby="var-reason-hint var-reason-error" aria-invalid="true"' in page
        assert f"contains {point(char)}" in page
        refused = ben.post(f"/console/messages/{message_id}/reject", {"reason": f"n{char}o"})
        assert refused.status_code == 400 and f"reason: contains {point(char)}" in refused.text
    assert count(session_factory, Message) == 1
    with session_factory() as session:
        assert session.get(Message, message_id).state == "submitted"
        assert session.scalars(select(Approval)).all() == []
    # A line break typed in the reason box arrives as CR LF, and is fine.
    assert (
        ben.post(f"/console/messages/{message_id}/reject", {"reason": "a\r\nb"}).status_code == 302
    )

    console.tokens["it"] = console.run.json("users", "add", "it")["token"]
    it = console.signed_in("it")
    upload = "phone,language,schools\n+14155550100,en,lincoln-hs\u202e\n".encode()
    refused = it.post("/console/contacts", {"file": (io.BytesIO(upload), "export.csv")})
    assert refused.status_code == 400
    assert "export.csv line 2, schools: contains U+202E" in refused.get_data(as_text=True)
    assert count(session_factory, Contact) == 6  # the sample families' rows, untouched


def test_the_contacts_csv_refuses_it_naming_line_and_column(run, tmp_path):
    admin = run.json("users", "add", "it")["token"]
    row = {
        "phone": "+1 951 555 0101",
        "language": "en",
        "schools": "lincoln-hs",
        "routes": "12",
        "grades": "10",
        "opted_out": "no",
    }
    path = tmp_path / "contacts.csv"
    good = ",".join(row) + "\n" + ",".join(row.values()) + "\n"
    for column, char in zip(row, SAMPLE, strict=True):
        # A character a parser would skip (the phone number's) is refused all the same.
        bad = {**row, column: row[column][:1] + char + row[column][1:]}
        path.write_text(good + ",".join(bad.values()) + "\n", encoding="utf-8")
        refused = run("contacts", "import", str(path), "--as", "it", token=admin)
        one_line_refusal(refused, f"contacts.csv line 3, {column}: contains {point(char)}")
    path.write_text(good, encoding="utf-8")
    imported = run.json("contacts", "import", str(path), "--as", "it", token=admin)
    assert imported["replaced"] == 0  # no refused file left a row behind


def cli_with(tmp_path, config: str) -> Cli:
    """The CLI with this district file (the file is refused before any database is opened)."""
    return Cli({"BROADCASTER_HOME": str(tmp_path / "home"), "BROADCASTER_CONFIG": config})


def district_file(tmp_path, replace: tuple[str, str], extra: str = "") -> str:
    text = SAMPLE_CONFIG.read_text(encoding="utf-8")
    assert replace[0] in text
    path = tmp_path / "district.toml"
    path.write_text(extra + text.replace(replace[0], replace[1], 1), encoding="utf-8")
    shutil.copy(SAMPLE_CONFIG.parent / "roster.csv", tmp_path / "roster.csv")
    return str(path)


@pytest.mark.parametrize("char", SAMPLE)
def test_the_district_config_refuses_it_naming_the_field(tmp_path, char):
    escaped = f"\\U{ord(char):08X}"  # TOML's escape: the file itself stays plain text
    district = load_district(SAMPLE_CONFIG)
    school = district.schools[0].name
    for old, new, field in (
        (f'"{school}"', f'"{school}{escaped}"', "schools.0.name"),
        (
            f'name = "{district.district.name}"',
            f'name = "{district.district.name}{escaped}"',
            "district.name",
        ),
        ('es = "', f'"es{escaped}" = "', "names"),  # a key
    ):
        path = district_file(tmp_path, (old, new))
        refused = cli_with(tmp_path, path)("templates", "list")
        one_line_refusal(refused, path, field, point(char))


@pytest.mark.parametrize("char", SAMPLE)
def test_template_files_are_refused_naming_the_file(tmp_path, char):
    mine = tmp_path / "mine" / "school_closure"
    shutil.copytree(BUILTIN_TEMPLATES / "school_closure", mine)
    sms = mine / "sms.en.j2"
    sms.write_text(sms.read_text(encoding="utf-8") + f"Call us{char}", encoding="utf-8")
    with pytest.raises(BadInput) as refused:
        load_template(mine)
    assert str(refused.value).startswith(
        f"template school_closure: sms.en.j2: contains {point(char)}"
    )

    shutil.copy(BUILTIN_TEMPLATES / "school_closure" / "sms.en.j2", sms)
    meta = mine / "meta.toml"
    text = meta.read_text(encoding="utf-8")
    meta.write_text(text.replace('title = "', f'title = "\\U{ord(char):08X}', 1), encoding="utf-8")
    path = district_file(
        tmp_path, ("[district]", "[district]"), extra='templates_dirs = ["mine"]\n'
    )
    refused = cli_with(tmp_path, path)("templates", "show", "school_closure")
    one_line_refusal(refused, "template school_closure: meta.toml title", point(char))


# --- the writers --------------------------------------------------------------------------------


def test_a_stored_row_with_them_is_cleaned_and_no_feed_goes_down(site, session_factory, cap_schema):
    """Rows written before the rules (or by a path that skipped them): each character replaced,
    never a 500 for everyone, and the other alerts still listed."""
    bad_id = site.publish(*closure("snow"))
    good_id = site.publish("delayed_start", "--var", "schools=all", "--var", "date=2026-03-03",
                           "--var", "delay_minutes=120", "--var", "reason=fog")  # fmt: skip
    junk = "".join(c for c in REFUSED.values() if c != "\x00")  # PostgreSQL stores no NUL
    with session_factory() as session:
        bad = session.scalars(select(Message).where(Message.template == "school_closure")).one()
        bad.title = f"School closure{junk}"
        for rendition in session.scalars(select(Rendition).where(Rendition.message_id == bad.id)):
            # In the headline (every list shows it) and the text (the feeds and CAP show it).
            rendition.text = rendition.text.replace("March 3", f"March 3{junk}").replace(
                "snow", f"snow{junk}"
            )

    # The junk starts with a backspace, which a writer shows as U+FFFD.
    shows = {
        "/": "March 3\ufffd",
        "/banner.js": "March 3\\ufffd",  # in JSON
        f"/alerts/{bad_id}": "snow\ufffd",
        f"/alerts/{bad_id}.cap.xml": "snow\ufffd",
        **dict.fromkeys(FEEDS, "snow\ufffd"),
    }
    for path, text in shows.items():
        response = site.get(path)
        assert response.status_code == 200, (path, response.text[:300])
        assert text_safety.clean_for_xml(response.text) == response.text, path
        assert text in response.text, path
    for path in FEEDS:
        feed = etree.fromstring(site.get(path).content)
        assert len(feed.xpath("//*[local-name()='item' or local-name()='entry']")) == 2, path
    for alert_id in (bad_id, good_id):
        xml = etree.fromstring(site.get(f"/alerts/{alert_id}.cap.xml").content)
        assert cap_schema.validate(xml), cap_schema.error_log
    page = lxml.html.fromstring(site.get(f"/alerts/{bad_id}").content)
    assert "snow\ufffd" in page.text_content()
    items = site.get("/feeds/alerts.json").json()["items"]
    assert len(items) == 2 and any("snow\ufffd" in i["content_text"] for i in items)
