"""Families, not phone numbers: households, landlines, e-mail addresses and per-category channel
choices in the contacts CSV, and what each channel reaches (issue 13, item 4)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from broadcaster.core import contacts
from broadcaster.core.contacts import current_version, parse_audience
from broadcaster.core.models import Contact, Delivery
from broadcaster.delivery import expansion
from tests.conftest import submit_and_approve

HEADER = "household,phone,landline,email,language,schools,routes,grades,channels,opted_out\n"
FAMILIES = [
    # Two students, one family: one text, one call, one e-mail to each address.
    "H-1,951-555-0101,,ana@example.org;ANA@example.org,es,lincoln-hs,12,10,,no",
    "H-1,951-555-0101,951-555-0111,pablo@example.org,en,washington-ms,12,6,,no",
    # Texts only, except e-mail for events.
    "H-2,951-555-0102,,bo@example.org,en,lincoln-hs,12,11,text;events=email,no",
    # A landline and nothing else: only calls reach it.
    "H-3,,951-555-0113,,en,lincoln-hs,12,9,,no",
    # An e-mail only family, with an internationalized domain.
    "H-4,,,li@bücher.example,en,lincoln-hs,12,9,,no",
    # No household id: the family of its mobile; it opted out of texts and calls.
    ",951-555-0105,,cy@example.org,en,lincoln-hs,12,9,,yes",
]


@pytest.fixture
def admin(run) -> str:
    return run.json("users", "add", "it")["token"]


def import_rows(run, admin, tmp_path, rows: list[str], header: str = HEADER):
    path = tmp_path / "families.csv"
    path.write_text(header + "\n".join(rows) + "\n", encoding="utf-8")
    return run("contacts", "import", str(path), "--as", "it", "--json", token=admin)


def reached(session, district, channel: str, category: str) -> dict[str, str]:
    """recipient -> household the channel reaches for a message of this category."""
    audience, version = parse_audience("all", district), current_version(session)
    rows = contacts.recipients(session, audience, version, channel, category).subquery()
    return {r[1]: r[3] for r in session.execute(rows.select().order_by(rows.c[0]))}


def test_families_import_with_their_numbers_addresses_and_choices(run, admin, tmp_path):
    result = import_rows(run, admin, tmp_path, FAMILIES)
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)
    assert counts["households"] == 5  # H-1 to H-4 and the unnamed one
    assert (counts["phones"], counts["landlines"], counts["emails"]) == (3, 2, 5)
    assert counts["opted_out"] == 1


def test_each_channel_reaches_what_the_family_chose(
    run, admin, tmp_path, session_factory, district
):
    assert import_rows(run, admin, tmp_path, FAMILIES).exit_code == 0
    with session_factory() as session:
        texts = reached(session, district, "sms", "closure")
        calls = reached(session, district, "voice", "closure")
        mails = reached(session, district, "email", "closure")
        event_mails = reached(session, district, "email", "events")
        event_texts = reached(session, district, "sms", "events")
        emergency_calls = reached(session, district, "voice", "emergency")
        unnamed = session.scalar(select(Contact.household).where(Contact.phone == "+19515550105"))
    # The opted-out mobile gets no text or call, but its family's e-mail still goes.
    assert texts == {"+19515550101": "H-1", "+19515550102": "H-2"}
    # H-2 chose texts: no call for a closure; landlines are called.
    assert calls == {"+19515550101": "H-1", "+19515550111": "H-1", "+19515550113": "H-3"}
    assert set(mails) == {
        "ana@example.org",
        "pablo@example.org",
        "li@xn--bcher-kva.example",
        "cy@example.org",
    }
    assert mails["cy@example.org"] == unnamed and unnamed.startswith("~")
    assert "951" not in unnamed  # a derived household never shows the number it came from
    assert "bo@example.org" in event_mails and "+19515550102" not in event_texts
    # An emergency reaches every channel a family has, whatever it chose.
    assert "+19515550102" in emergency_calls


@pytest.mark.parametrize(
    ("row", "says"),
    [
        ("H-9,,,,en,lincoln-hs,12,9,,no", "line 2: no phone, landline or email"),
        ("H-9,,,not-an-address,en,lincoln-hs,12,9,,no", "line 2: email 'not-an-address'"),
        ("H-9,,,a@b.org\u202e,en,lincoln-hs,12,9,,no", "line 2, email"),  # bidi override
        ("H-9,,12345,,en,lincoln-hs,12,9,,no", "line 2: landline '12345'"),
        ("H 9,951-555-0101,,,en,lincoln-hs,12,9,,no", "line 2: household 'H 9'"),
        ("H-9,951-555-0101,,,en,lincoln-hs,12,9,fax,no", "line 2: channels: 'fax'"),
        ("H-9,951-555-0101,,,en,lincoln-hs,12,9,emergency=text,no", "every channel"),
        ("H-9,951-555-0101,,,en,lincoln-hs,12,9,events=text;events=call,no", "given twice"),
        ("H-9,951-555-0101,,,en,lincoln-hs,12,9,{{x}}=text,no", "not a category name"),
        (
            "H-9,,," + ";".join(f"p{i}@example.org" for i in range(6)) + ",en,lincoln-hs,12,9,,no",
            "at most 5 e-mail addresses",
        ),
    ],
)
def test_a_bad_family_row_is_refused_by_line_and_nothing_changes(
    run, admin, tmp_path, session_factory, row, says
):
    assert import_rows(run, admin, tmp_path, FAMILIES[:1]).exit_code == 0
    result = import_rows(run, admin, tmp_path, [row])
    assert result.exit_code == 2
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1
    with session_factory() as session:
        assert session.scalars(select(Contact.household)).all() == ["H-1"]


def test_a_closure_writes_one_delivery_per_number_and_address_for_each_family(
    run, tokens, admin, tmp_path, session_factory, compose_closure, district
):
    assert import_rows(run, admin, tmp_path, FAMILIES).exit_code == 0
    draft = compose_closure("--channels", "sms,voice")
    # Families, and what each channel reaches: H-1, H-2, H-3 (H-4 and the unnamed family have
    # only e-mail, which this message does not send).
    assert draft["recipients"] == 3
    assert draft["reach"] == {"sms": 2, "voice": 3}
    submit_and_approve(run, tokens, draft)
    assert expansion.expand(run.settings(), district, [draft["id"]], page=2) == []
    with session_factory() as session:
        rows = session.execute(
            select(Delivery.channel, Delivery.recipient, Delivery.locale, Delivery.household)
            .where(Delivery.channel.in_(["sms", "voice"]))
            .order_by(Delivery.id)
        ).all()
    assert sorted(rows) == sorted(
        [
            # H-1's mobile in its first row's language (Spanish); its landline from row two.
            ("sms", "+19515550101", "es", "H-1"),
            ("sms", "+19515550102", "en", "H-2"),
            ("voice", "+19515550101", "es", "H-1"),
            ("voice", "+19515550111", "en", "H-1"),
            ("voice", "+19515550113", "en", "H-3"),
        ]
    )


def test_an_old_contacts_file_still_imports(run, admin, tmp_path, session_factory):
    old = "phone,language,schools,routes,grades,opted_out\n951-555-0101,es,lincoln-hs,12,10,no\n"
    path = tmp_path / "old.csv"
    path.write_text(old, encoding="utf-8")
    result = run.json("contacts", "import", str(path), "--as", "it", token=admin)
    assert (result["households"], result["phones"], result["emails"]) == (1, 1, 0)


def test_the_sample_families_preview_as_the_readme_says(compose_closure):
    # conftest's `families`: the sample district's contacts.csv (its opted-out row left out).
    draft = compose_closure("--channels", "sms,voice")
    assert (draft["recipients"], draft["reach"]) == (5, {"sms": 4, "voice": 3})
