"""Reach every family, end to end (issue 13, done when): real Celery workers (and their sweep),
the provider sandbox (Twilio texts and calls, its SMTP server) and the web app taking Twilio's
signed status callbacks, for 500 families of a contacts CSV with mobiles, landlines, e-mail
addresses and their own choices of channel.

- A bilingual closure reaches each family exactly once on each channel it chose (calls read in
  its language, e-mails with a text and an HTML part), and nobody on a channel it did not choose.
- An emergency whose texts fail for 10% of the families escalates those families to calls, then
  to e-mail; `broadcaster reach --json` lists exactly the families nothing reached.
"""

from __future__ import annotations

import csv
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import and_, func, or_, select

from broadcaster.core import db, ledger
from broadcaster.core.config import SAMPLE_CONFIG, SAMPLE_DISTRICT
from broadcaster.core.models import Delivery, Message
from tests.conftest import ON_POSTGRESQL, closure_vars, submit_and_approve
from tests.delivery_stack import Stack

pytestmark = [pytest.mark.slow, ON_POSTGRESQL]

FAMILIES = 500
SPOKEN = {"en": "en-US", "es": "es-US"}
# Seconds a text or call only `sent` is given to be reported delivered before the family's next
# step. The failures here are reported (undelivered, busy, ...), which escalates at once, so
# the test never waits this long; it only has to outlast a delivery report's way through the
# web app on a busy machine (up to 8 s seen with other test runs sharing two cores).
WAIT_S = 30
LIVE = ("approved", "dispatching")
CHANNEL_WORDS = {"text": "sms", "call": "voice", "email": "email"}


@dataclass
class Family:
    household: str
    language: str
    mobile: str | None = None
    landline: str | None = None
    emails: list[str] = field(default_factory=list)
    choice: str = ""  # the `channels` column
    second_student: bool = False  # a second contact row, same mobile and address

    def chosen(self, category: str) -> set[str]:
        """The channels this family takes for a message of this category."""
        if category == "emergency" or not self.choice:
            return {"sms", "voice", "email"}
        default: set[str] = set()
        for item in self.choice.split(";"):
            name, sep, words = item.partition("=")
            picked = {CHANNEL_WORDS[w] for w in (words if sep else item).split("+") if w}
            if not sep:
                default |= picked
            elif name == category:
                return picked
        return default

    def expected(self, category: str) -> dict[str, set[str]]:
        """channel -> the numbers or addresses it reaches of this family."""
        chosen = self.chosen(category)
        reach = {
            "sms": {self.mobile} if self.mobile and "sms" in chosen else set(),
            "voice": {n for n in (self.mobile, self.landline) if n} if "voice" in chosen else set(),
            "email": set(self.emails) if "email" in chosen else set(),
        }
        return {c: r for c, r in reach.items() if r}


def make_families(n: int = FAMILIES) -> list[Family]:
    """n families, by i % 10: mobiles with various choices, landline-only, e-mail-only, one in
    ten with two students (two rows); a third of them Spanish-speaking. Valid US numbers (the
    fictional 555-01xx block has only 100)."""
    families = []
    for i in range(n):
        kind = i % 10
        family = Family(f"F{i:03d}", "es" if i % 3 == 0 else "en")
        mobile, landline = f"+1415{2000000 + i:07d}", f"+1415{3000000 + i:07d}"
        email = f"family{i:03d}@example.org"
        if kind == 0:  # a mobile, every channel
            family.mobile = mobile
        elif kind == 1:  # texts, but e-mail for closures
            family.mobile, family.emails, family.choice = mobile, [email], "text;closure=email"
        elif kind == 2:  # a landline and nothing else
            family.landline = landline
        elif kind == 3:  # an address and nothing else
            family.emails = [email]
        elif kind == 4:  # everything, texts and e-mail chosen
            family.mobile, family.landline, family.emails = mobile, landline, [email]
            family.choice = "text+email"
        elif kind == 5:  # calls only
            family.mobile, family.emails, family.choice = mobile, [email], "call"
        elif kind == 6:  # e-mail only, two addresses
            family.mobile, family.choice = mobile, "email"
            family.emails = [email, f"other{i:03d}@example.org"]
        elif kind == 7:  # calls, to both numbers
            family.mobile, family.landline, family.choice = mobile, landline, "call"
        elif kind == 8:  # every channel
            family.mobile, family.emails = mobile, [email]
        else:  # two students, texts and e-mail
            family.mobile, family.emails, family.choice = mobile, [email], "text+email"
            family.second_student = True
        families.append(family)
    return families


def write_families(path: Path, families: list[Family]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["household", "phone", "landline", "email", "language", "schools", "routes", "grades"]
            + ["channels"]
        )
        for f in families:
            row = [f.household, f.mobile or "", f.landline or "", ";".join(f.emails), f.language]
            writer.writerow([*row, "lincoln-hs", "12", "10", f.choice])
            if f.second_student:
                writer.writerow([*row, "washington-ms", "12", "6", f.choice])


def import_families(run, tmp_path: Path, families: list[Family]) -> None:
    admin = run.json("users", "add", "it")["token"]
    path = tmp_path / "families.csv"
    write_families(path, families)
    counts = run.json("contacts", "import", str(path), "--as", "it", token=admin)
    assert counts["households"] == len(families), counts


def district_file(run, tmp_path: Path, extra: str = "") -> Path:
    """The sample district with calls and e-mails at a rate that does not make a test of 500
    families wait minutes (Twilio's default is 1 call a second), no second call to a busy line
    (each call's outcome is final), and `extra` appended."""
    text = SAMPLE_CONFIG.read_text(encoding="utf-8")
    text = text.replace(
        'name = "district-voice"\n',
        'name = "district-voice"\nrate_per_second = 200.0\nrecalls = 0\n',
        1,
    ).replace('name = "district-email"\n', 'name = "district-email"\nrate_per_second = 500.0\n', 1)
    text = text.replace('roster = "roster.csv"', f'roster = "{SAMPLE_DISTRICT / "roster.csv"}"')
    config = tmp_path / "district.toml"
    config.write_text(text + extra, encoding="utf-8")
    run.env["BROADCASTER_CONFIG"] = str(config)
    return config


def received(sandbox) -> dict[str, Counter[str]]:
    """channel -> how many texts, calls or e-mails each number or address received."""
    return {
        "sms": Counter(p["to"] for p in sandbox.posts("twilio")),
        "voice": Counter(c["to"] for c in sandbox.posts("voice")),
        "email": Counter(r for m in sandbox.smtp_messages() for r in m["rcpt_tos"]),
    }


def reach(run, tokens, message_id: int) -> dict:
    return run.json("reach", str(message_id), "--as", "ana", token=tokens["ana"])


def wait_settled(stack: Stack, run, tokens, message_id: int, timeout: float = 120) -> dict:
    """Wait until the message has finished, escalates no more and every text's and call's
    report is in (nothing queued, sending, or sent without a report); returns `reach --json`
    then. Polled in the database: the web app taking the reports runs in this process."""
    url = run.env["BROADCASTER_DATABASE_URL"]
    deadline = time.monotonic() + timeout
    while True:
        with db.session_scope(url) as session:
            message = session.get_one(Message, message_id)
            busy = message.escalating or message.expanding or message.state in LIVE
            waiting = session.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(
                    Delivery.message_id == message_id,
                    Delivery.channel.in_(("sms", "voice", "email")),
                    or_(
                        Delivery.status.in_(("queued", "sending")),
                        and_(Delivery.channel != "email", Delivery.status == "sent"),
                    ),
                )
            )
        if not busy and not waiting:
            view = reach(run, tokens, message_id)
            assert view["pending"] == 0, view
            return view
        if time.monotonic() > deadline:
            logs = "\n".join(p.read_text()[-3000:] for p in stack.tmp_path.glob("worker-*.log"))
            raise AssertionError(f"message {message_id} not settled ({waiting} open)\n{logs}")
        time.sleep(0.5)


def test_a_bilingual_closure_reaches_each_family_once_on_the_channels_it_chose(
    stack, run, tokens, web_app, tmp_path
):
    district_file(run, tmp_path)
    run.env["BROADCASTER_PUBLIC_URL"] = web_app()  # the texts' and calls' status callbacks
    families = make_families()
    import_families(run, tmp_path, families)
    channels = "x,facebook,sms,voice,email,web"
    draft = run.json(
        "compose", "school_closure", "--as", "ana", "--channels", channels,
        *closure_vars("a winter storm", "una tormenta invernal"), token=tokens["ana"],
    )  # fmt: skip
    rendered = {(r["channel"], r["locale"]): r["text"] for r in draft["renditions"]}
    assert {locale for channel, locale in rendered if channel == "voice"} == {"en", "es"}
    expected = {f.household: f.expected("closure") for f in families}
    by_number = {
        channel: {r: f.language for f in families for r in expected[f.household].get(channel, ())}
        for channel in ("sms", "voice", "email")
    }
    submit_and_approve(run, tokens, draft)
    stack.start_worker()
    stack.start_worker()

    view = wait_settled(stack, run, tokens, draft["id"])
    assert view["state"] == "sent", view["state"]

    # Each number or address received exactly one text, call or e-mail, on the channels its
    # family chose and on no other.
    got = received(stack.sandbox)
    for channel in ("sms", "voice", "email"):
        assert set(got[channel]) == set(by_number[channel]), channel
        assert {r: n for r, n in got[channel].items() if n != 1} == {}, channel
    # The social and web posts, once each.
    # The social and web posts, once each (on X, English and its Spanish reply).
    assert len(stack.sandbox.posts("x")) == 2 and len(stack.sandbox.posts("facebook")) == 1

    # Texts in the family's language.
    for text in stack.sandbox.posts("twilio"):
        assert text["body"] == rendered[("sms", by_number["sms"][text["to"]])]
    # Calls read in the family's language, with a voice of that language, twice.
    for call in stack.sandbox.posts("voice"):
        language = by_number["voice"][call["to"]]
        said = [s for s in call["said"] if s["text"] == rendered[("voice", language)]]
        assert len(said) == 2, call["said"]
        assert {s["language"] for s in call["said"]} == {SPOKEN[language]}
        assert call["status"] == "completed"
    # E-mails in the family's language first, then the other, with a text and an HTML part
    # (the web rendition, in the same order).
    for message in stack.sandbox.smtp_messages():
        (address,) = message["rcpt_tos"]
        language = by_number["email"][address]
        subject, _, body = rendered[("email", language)].partition("\n\n")
        assert message["subject"] == subject.removeprefix("Subject: ")
        assert message["content_type"] == "multipart/alternative"
        text = str(message["text"]).replace("\r\n", "\n").strip()
        assert text.startswith(body.strip() + "\n\n— ")
        other = "en" if language == "es" else "es"
        assert rendered[("email", other)].partition("\n\n")[2].strip() in text
        html = str(message["html"])
        assert html.index(f'<section lang="{language}">') < html.index(f'lang="{other}"')

    # Every family reached (texts and calls reported delivered through the web app's hooks),
    # counted under each channel that reached it.
    assert (view["families"], view["reached"], view["not_reached"]) == (FAMILIES, FAMILIES, 0)
    assert view["unreached"] == []
    assert view["by_channel"] == {
        channel: sum(1 for e in expected.values() if channel in e)
        for channel in ("sms", "voice", "email")
    }
    assert run("records", "verify").exit_code == 0


# --- an emergency whose texts fail for 10% of the families ------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What happens to one family in the emergency, and what reaches it in the end."""

    text: tuple[str, int] | None = None  # the text's failure (Twilio's status, error code)
    call: dict[str, str] = field(default_factory=dict)  # number -> how its call ends
    refused: tuple[str, ...] = ()  # addresses the mail server refuses (550)
    reached_by: str | None = None  # None: nothing reaches it


def emergency_outcomes(families: list[Family]) -> dict[str, Outcome]:
    """The families of every fifth block of ten (10 of each kind, 50 families with a mobile:
    10% of all): their texts fail, and then, by kind, their calls and e-mails. Every other
    family is reached by its first step."""
    outcomes: dict[str, Outcome] = {}
    for i, f in enumerate(families):
        kind, block = i % 10, i // 10
        first = "sms" if f.mobile else "voice" if f.landline else "email"
        if block % 5:
            outcomes[f.household] = Outcome(reached_by=first)
            continue
        odd = (block // 5) % 2 == 1
        text = ("failed", 30008) if odd else ("undelivered", 30003)
        mobile, landline = f.mobile or "", f.landline or ""
        if kind == 0:  # a mobile only: the call answered, or busy and nothing left to try
            outcome = Outcome(text, {mobile: "busy"}) if odd else Outcome(text, reached_by="voice")
        elif kind == 1:  # the call not answered: the e-mail reaches it
            outcome = Outcome(text, {mobile: "no-answer"}, reached_by="email")
        elif kind == 4:  # the mobile's call fails, the landline's is answered
            outcome = Outcome(text, {mobile: "failed"}, reached_by="voice")
        elif kind == 5:  # the call fails and the mail server refuses the address
            outcome = Outcome(text, {mobile: "failed"}, tuple(f.emails))
        elif kind == 8:  # a voicemail takes the call: reached
            outcome = Outcome(text, {mobile: "machine"}, reached_by="voice")
        elif kind == 2:  # the landline's call fails: nothing else to try
            outcome = Outcome(call={landline: "failed"})
        elif kind == 3:  # the only address is refused
            outcome = Outcome(refused=tuple(f.emails))
        else:
            outcome = Outcome(reached_by=first)
        outcomes[f.household] = outcome
    return outcomes


EMERGENCY_FAMILIES = make_families()
EMERGENCY = emergency_outcomes(EMERGENCY_FAMILIES)
EMERGENCY_SANDBOX = {
    "twilio_delivery_failures": {
        f.mobile: EMERGENCY[f.household].text
        for f in EMERGENCY_FAMILIES
        if EMERGENCY[f.household].text
    },
    "twilio_call_outcomes": {n: o for out in EMERGENCY.values() for n, o in out.call.items()},
    "smtp_refused_recipients": {
        a: (550, f"5.1.1 <{a}>: Recipient address rejected: User unknown")
        for out in EMERGENCY.values()
        for a in out.refused
    },
}


@pytest.mark.parametrize("sandbox_options", [EMERGENCY_SANDBOX], indirect=True)
def test_an_emergency_escalates_failed_texts_to_calls_then_email_and_reach_names_the_rest(
    stack, run, tokens, web_app, tmp_path, sandbox_options
):
    families = EMERGENCY_FAMILIES
    failing = [f for f in families if EMERGENCY[f.household].text]
    assert len(failing) == FAMILIES // 10
    district_file(
        run,
        tmp_path,
        f'\n[escalation.emergency]\nsteps = ["sms", "voice", "email"]\nwait_s = {WAIT_S}\n',
    )
    run.env["BROADCASTER_PUBLIC_URL"] = web_app()
    import_families(run, tmp_path, families)
    triggered = run.json(
        "trigger", "lockdown", "--as", "carmen", "--var", "school=lincoln-hs", "--audience", "all",
        "--channels", "sms,voice,email", "--yes", "--no-follow", token=tokens["carmen"],
    )  # fmt: skip
    message_id = int(triggered["id"])
    stack.start_worker()
    stack.start_worker()

    view = wait_settled(stack, run, tokens, message_id)
    got = received(stack.sandbox)

    # Texts: one to every mobile (an emergency uses every channel, whatever the family chose).
    mobiles = {f.mobile for f in families if f.mobile}
    assert set(got["sms"]) == mobiles
    # Calls: to the landline-only families, and to every number of the families whose text
    # failed; nobody else. E-mails: to the e-mail-only families, and to the families nothing
    # reached by text or call; nobody else.
    escalated = {f.household for f in failing}
    called = {
        n
        for f in families
        if not f.mobile or f.household in escalated
        for n in (f.mobile, f.landline)
        if n
    }
    assert set(got["voice"]) == called
    by_call = {n: o for out in EMERGENCY.values() for n, o in out.call.items()}
    reached_by_call = {
        f.household
        for f in failing
        if any(
            by_call.get(n, "answered") in ("answered", "machine")
            for n in (f.mobile, f.landline)
            if n
        )
    }
    mailed = {
        a
        for f in families
        if (not f.mobile and not f.landline)
        or (f.household in escalated and f.household not in reached_by_call)
        for a in f.emails
    }
    refused = {a for out in EMERGENCY.values() for a in out.refused}
    assert set(got["email"]) == mailed - refused
    refusals = Counter(
        r["body"]["rcpt_to"] for r in stack.sandbox.requests("email") if r.get("status") == 550
    )
    assert refusals == Counter(refused)  # each refused address tried once, never again
    # Nobody received anything twice.
    for channel in ("sms", "voice", "email"):
        assert {r: n for r, n in got[channel].items() if n != 1} == {}, channel
    # Escalated calls are read in the family's language too.
    language = {n: f.language for f in families for n in (f.mobile, f.landline) if n}
    for call in stack.sandbox.posts("voice"):
        assert {s["language"] for s in call["said"]} == {SPOKEN[language[call["to"]]]}

    # `reach` names exactly the families nothing reached, with what was tried; every other
    # family was reached by the channel expected.
    unreached = {h for h, out in EMERGENCY.items() if out.reached_by is None}
    assert len(unreached) == 35
    assert (view["families"], view["pending"]) == (FAMILIES, 0)
    assert (view["reached"], view["not_reached"]) == (FAMILIES - 35, 35)
    assert {u["household"] for u in view["unreached"]} == unreached
    for family in view["unreached"]:
        f = next(f for f in families if f.household == family["household"])
        steps = {"sms"} if f.mobile else set()
        steps |= {"voice"} if f.mobile or f.landline else set()
        steps |= {"email"} if f.emails else set()
        assert {t["channel"] for t in family["tried"]} == steps, family
        assert {t["status"] for t in family["tried"]} == {"failed"}, family
        assert family["last_error"], family
    reached = {h["household"]: h["channel"] for h in view["households"] if h["status"] == "reached"}
    assert reached == {h: out.reached_by for h, out in EMERGENCY.items() if out.reached_by}
    assert view["state"] in ("sent", "partially_sent"), view["state"]

    # The ledger: each sweep that wrote a next step says so (50 families to calls, 20 of them
    # on to e-mail: those with an address whose calls reached nobody).
    with db.session_scope(run.env["BROADCASTER_DATABASE_URL"]) as session:
        entries = ledger.entries_for(session, message_id, events=("delivery.escalated",))
        payloads = [payload or {} for _, payload in entries]
    assert entries, "no delivery.escalated entry"
    assert sum(p["families"] for p in payloads) == 50 + 20, payloads
    assert sum(p["deliveries"].get("voice", 0) for p in payloads) == len(called) - 50
    assert sum(p["deliveries"].get("email", 0) for p in payloads) == 20
    assert run("records", "verify").exit_code == 0
