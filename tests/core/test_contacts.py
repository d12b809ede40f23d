"""Contacts import (all or nothing, with line numbers), opt-outs, audiences and recipients."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from broadcaster.core import contacts
from broadcaster.core.config import SAMPLE_DISTRICT
from broadcaster.core.contacts import IMPORT_CHUNK, current_version, parse_audience, reach
from broadcaster.core.errors import BadInput
from broadcaster.core.models import Contact, ContactList
from tests.conftest import closure_vars, submit_and_approve

HEADER = "phone,language,schools,routes,grades,opted_out\n"


@pytest.fixture
def admin(run) -> str:
    return run.json("users", "add", "it")["token"]


def write(tmp_path, text: str, name: str = "contacts.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_the_example_file_imports(run, admin):
    result = run.json(
        "contacts", "import", str(SAMPLE_DISTRICT / "contacts.csv"), "--as", "it", token=admin
    )
    assert result == {
        "rows": 7,
        "households": 6,
        "phones": 5,
        "landlines": 1,
        "emails": 3,
        "opted_out": 1,
        "replaced": 0,
    }


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (
            "(951) 555-0101,en,lincoln-hs,12,10,no\n12345,en,lincoln-hs,12,10,no\n",
            "line 3: phone '12345' is not a phone number",
        ),
        ("(951) 555-0101,en,hogwarts,12,10,no\n", "line 2: unknown school 'hogwarts'"),
        ("(951) 555-0101,en,lincoln-hs,99,10,no\n", "line 2: unknown route '99'"),
        ("(951) 555-0101,english,lincoln-hs,12,10,no\n", "line 2: language 'english'"),
        ("(951) 555-0101,en,lincoln-hs,12,13,no\n", "line 2: grade '13'"),
        ("(951) 555-0101,en,lincoln-hs,12,10,maybe\n", "line 2: opted_out 'maybe'"),
        ("(951) 555-0101,en,lincoln-hs\n", "line 2: expected 6 fields"),
        ('(951) 555-0101,en,"lincoln-hs,12,10,no\n', "line"),
    ],
)
def test_a_bad_row_is_named_and_nothing_is_imported(run, admin, tmp_path, body, says):
    good = write(tmp_path, HEADER + "951-555-0150,en,lincoln-hs,12,10,no\n", "good.csv")
    run("contacts", "import", good, "--as", "it", token=admin)
    result = run("contacts", "import", write(tmp_path, HEADER + body), "--as", "it", token=admin)
    assert result.exit_code == 2
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1
    again = run.json("contacts", "import", good, "--as", "it", token=admin)
    assert again["replaced"] == 1  # the failed import left the earlier list as it was


def test_a_bad_row_after_the_first_chunk_written_rolls_the_whole_import_back(
    run, admin, tmp_path, session_factory
):
    good = write(tmp_path, HEADER + "951-555-0150,en,lincoln-hs,12,10,no\n", "good.csv")
    run("contacts", "import", good, "--as", "it", token=admin)
    rows = "".join(f"+1415{3000000 + i:07d},en,lincoln-hs,12,10,no\n" for i in range(IMPORT_CHUNK))
    big = write(tmp_path, HEADER + rows + "12345,en,lincoln-hs,12,10,no\n")
    result = run("contacts", "import", big, "--as", "it", token=admin)
    assert result.exit_code == 2
    assert f"line {IMPORT_CHUNK + 2}: phone '12345' is not a phone number" in result.stderr
    with session_factory() as session:  # the list is the one before, with nothing added
        assert session.scalars(select(Contact.phone)).all() == ["+19515550150"]
        assert session.scalar(select(func.count()).select_from(ContactList)) == 2  # 1, then good


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "is empty"),
        ("name,email\nx,y\n", "unknown column name"),
        ("language,schools\nen,lincoln-hs\n", "needs a phone, landline or email column"),
        ("\ufeffphone,language\n+19515550101,es\n", None),  # a BOM from a spreadsheet is fine
    ],
)
def test_malformed_files(run, admin, tmp_path, text, says):
    result = run("contacts", "import", write(tmp_path, text), "--as", "it", token=admin)
    if says is None:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 2 and says in result.stderr


def test_not_utf8_and_missing_file(run, admin, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + "951-555-0101,es,lincoln-hs,12,10,no # Núñez\n").encode("latin-1"))
    result = run("contacts", "import", str(path), "--as", "it", token=admin)
    assert result.exit_code == 2 and "UTF-8" in result.stderr
    assert (
        run("contacts", "import", str(tmp_path / "nope.csv"), "--as", "it", token=admin).exit_code
        == 2
    )


def test_only_an_admin_imports(run, tokens, tmp_path):
    result = run("contacts", "import", write(tmp_path, HEADER), "--as", "ana", token=tokens["ana"])
    assert result.exit_code == 2 and "may not import contacts" in result.stderr


def test_audience_expressions(district):
    assert parse_audience("all", district).everyone
    audience = parse_audience("school:lincoln-hs school:washington-ms route:12", district)
    assert audience.describe() == "school:lincoln-hs school:washington-ms route:12"
    for bad in ("", "school:hogwarts", "route:99", "grade:13", "bus:12", "lincoln-hs"):
        with pytest.raises(BadInput):
            parse_audience(bad, district)


def selected(
    session, district, expression: str, channel: str = "sms", category: str = "closure"
) -> dict[str, str]:
    """recipient -> language the audience selects in the current list on one channel, each in
    its first row's language (as the expansion writes them)."""
    audience, version = parse_audience(expression, district), current_version(session)
    rows = contacts.recipients(session, audience, version, channel, category).subquery()
    chosen: dict[str, str] = {}
    for _, recipient, language, _ in session.execute(rows.select().order_by(rows.c[0])):
        chosen.setdefault(recipient, language)
    return chosen


def test_recipients_are_deduplicated_opted_out_and_narrowed(
    run, admin, tmp_path, session_factory, district
):
    rows = [
        "951-555-0101,es,lincoln-hs,12,10,no",  # two students share this phone
        "951-555-0101,en,washington-ms,12,6,no",
        "951-555-0102,en,lincoln-hs,,11,no",
        "951-555-0103,en,lincoln-hs,12,9,yes",  # opted out
        "951-555-0104,en,jefferson-es,7,2,no",
    ]
    run(
        "contacts",
        "import",
        write(tmp_path, HEADER + "\n".join(rows) + "\n"),
        "--as",
        "it",
        token=admin,
    )
    with session_factory() as session:
        everyone = selected(session, district, "all")
        lincoln_12 = selected(session, district, "school:lincoln-hs route:12")
        route_12 = selected(session, district, "route:12")
        counted = reach(
            session, parse_audience("all", district), current_version(session), ["sms"], "x"
        )
    assert everyone == {"+19515550101": "es", "+19515550102": "en", "+19515550104": "en"}
    # by the database, each phone in its first language; without households, a phone's rows
    # are one family
    assert counted.by_channel == {"sms": {"es": 1, "en": 2}} and counted.families == 3
    assert lincoln_12 == {"+19515550101": "es"}
    assert route_12 == {"+19515550101": "es"}


def test_texting_needs_an_audience_and_the_preview_counts_it(run, tokens, admin, compose_closure):
    run("contacts", "import", str(SAMPLE_DISTRICT / "contacts.csv"), "--as", "it", token=admin)
    no_audience = closure_vars("snow", audience=None)
    result = run("compose", "school_closure", "--as", "ana", *no_audience, token=tokens["ana"])
    assert result.exit_code == 2 and "--audience" in result.stderr
    draft = compose_closure(audience="route:12")
    assert draft["audience"] == "route:12" and draft["recipients"] == 2
    assert compose_closure(audience="all")["recipients"] == 4
    social = compose_closure("--channels", "x,facebook", audience=None)
    assert social["recipients"] == 0


def test_each_phone_is_texted_in_its_language_or_english(
    run, tokens, admin, tmp_path, session_factory, compose_closure, district
):
    from sqlalchemy import select

    from broadcaster.core.models import Delivery
    from broadcaster.delivery import expansion

    rows = "+14155550101,es-MX\n+14155550102,fr\n+14155550103,en\n+14155550101,en\n"
    run("contacts", "import", write(tmp_path, "phone,language\n" + rows), "--as", "it", token=admin)
    draft = compose_closure("--channels", "sms")
    submit_and_approve(run, tokens, draft)
    # The texts are written after the approval, as a worker would, in pages of two here.
    assert expansion.expand(run.settings(), district, [draft["id"]], page=2) == []
    with session_factory() as session:
        frozen = dict(session.execute(select(Delivery.recipient, Delivery.locale)).all())
    # One row per phone, first row's language (a region read as its language: es-MX is es);
    # French falls back to English, the only other.
    assert frozen == {"+14155550101": "es", "+14155550102": "en", "+14155550103": "en"}
    with session_factory() as session:
        stored = set(session.execute(select(Contact.phone, Contact.locale)).all())
    assert {("+14155550101", "es"), ("+14155550102", "fr")} <= stored


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_an_import_leaves_the_planner_statistics_for_its_rows(
    run, admin, tmp_path, session_factory
):
    rows = "".join(f"+1415{3000000 + i:07d},en,lincoln-hs,12,10,no\n" for i in range(500))
    run.json("contacts", "import", write(tmp_path, HEADER + rows), "--as", "it", token=admin)
    # An expansion pages through them by id; without statistics the planner scans them all for
    # every page (until autovacuum gets to the table).
    with session_factory() as session:
        known = session.scalar(text("SELECT reltuples FROM pg_class WHERE relname = 'contacts'"))
    assert known == 500
