"""Drills on real phones in a production deployment (issue 10, item 3).

deploy/production.toml as shipped, with no sandbox anywhere (no `[sandbox] trusted`, no
BROADCASTER_SANDBOX_URL for the CLI or the worker). The provider sandbox stands in for Twilio at
the SMS accounts' `api_base_url`, and it checks each account's real auth token: so whatever it
receives came through an account's own credentials, not the sandbox's public ones.

An exercise texts the allowlisted staff phones through the drill account, once each, marked;
nobody else gets anything; the ledger says the deliveries were not sandboxed. A `test` message
is refused with its reason; a live message never goes to the drill or test accounts.
"""

from __future__ import annotations

import re
import tomllib

import pytest
from sqlalchemy import select

from broadcaster.core import db, ledger
from broadcaster.core.config import DistrictConfig, Settings, load_district
from broadcaster.core.models import Delivery, WebAlert
from broadcaster.delivery.accounts import account_config
from channel_adapters.transport import ProviderTransport, SandboxRefused
from tests.conftest import ON_POSTGRESQL, ROOT, submit_and_approve
from tests.delivery_stack import FAST_SWEEP, Stack, redis_url, texts_by_phone

PRODUCTION = ROOT / "deploy" / "production.toml"
TOKEN = "drill-real-token-7f3a"  # noqa: S105 (a test's stand-in for the district's secret)
ACCOUNT_SID = "AC00000000000000000000000000000000"  # both SMS accounts' (production.toml)
DRILL_SERVICE = "MG11111111111111111111111111111111"
DISTRICT_SERVICE = "MG00000000000000000000000000000000"
STAFF = {"+19515550199", "+19515550198"}  # the allowlist's phones
PARENTS = [f"+1415555{n:04d}" for n in range(100, 112)]


@pytest.fixture
def production(run, tmp_path, monkeypatch):
    """A real worker stack on deploy/production.toml, Twilio played by the sandbox at the SMS
    accounts' api_base_url, and no sandbox configured."""
    from provider_sandbox import Sandbox

    monkeypatch.delenv("BROADCASTER_SANDBOX_URL", raising=False)
    with Sandbox(port=0, twilio_auth_tokens={ACCOUNT_SID: TOKEN}) as sandbox:
        text = PRODUCTION.read_text(encoding="utf-8")
        for name in ("district-sms", "drill-sms"):
            text = text.replace(
                f'name = "{name}"\n', f'name = "{name}"\napi_base_url = "{sandbox.url}"\n', 1
            )
        roster = tmp_path / "roster.csv"
        roster.write_text("first_name,last_name\n", encoding="utf-8")
        text = re.sub(r'(?m)^roster = ".*"$', f'roster = "{roster}"', text)
        # The public site is published here, not in the machine's /var/lib.
        text = re.sub(r'(?m)^publish_dir = ".*"$', f'publish_dir = "{tmp_path / "site"}"', text)
        assert f'publish_dir = "{tmp_path / "site"}"' in text
        config = tmp_path / "district.toml"
        config.write_text(text, encoding="utf-8")
        assert not load_district(config).sandbox.trusted
        run.env.update(FAST_SWEEP)
        run.env.update(
            BROADCASTER_CONFIG=str(config),
            BROADCASTER_BROKER_URL=redis_url(),
            TWILIO_AUTH_TOKEN=TOKEN,
        )
        built = Stack(run, sandbox, tmp_path)
        try:
            yield built
        finally:
            built.stop()


@pytest.fixture
def people(run, tmp_path):
    """Users and contacts: parents at every school, one staff phone among them."""
    tokens = {name: run.json("users", "add", name)["token"] for name in ("ana", "ben", "it")}
    rows = [f"{p},en,lincoln-hs,12,10,no" for p in [*PARENTS, "+19515550199"]]
    csv = tmp_path / "contacts.csv"
    csv.write_text("phone,language,schools,routes,grades,opted_out\n" + "\n".join(rows) + "\n")
    run.json("contacts", "import", str(csv), "--as", "it", token=tokens["it"])
    return tokens


def compose(run, tokens, kind: str, channels: str = "sms,web") -> dict:
    return run.json(
        "compose",
        "school_closure",
        "--as",
        "ana",
        "--kind",
        kind,
        "--channels",
        channels,
        "--audience",
        "all",
        "--var",
        "schools=all",
        "--var",
        "date=2026-03-03",
        "--var",
        "reason=a drill",
        "--var",
        "reason.es=un simulacro",
        token=tokens["ana"],
    )


def delivery_entries(db_url: str, message_id: int) -> list[dict]:
    with db.session_scope(db_url) as session:
        return [
            payload
            for entry, payload in ledger.entries_for(session, message_id)
            if entry.event.startswith("delivery.")
        ]


@ON_POSTGRESQL
def test_an_exercise_texts_the_staff_phones_through_the_drill_account_and_nobody_else(
    production, run, people, db_url
):
    draft = compose(run, people, "exercise")
    assert {(t["channel"], t["account"]) for t in draft["targets"]} == {
        ("sms", "drill-sms"),
        ("web", "test-web"),
    }
    assert draft["findings"] == []
    assert draft["recipients"] == len(STAFF)
    submit_and_approve(run, people, draft)
    production.start_worker()
    assert production.wait_done(draft["id"])["state"] == "sent"

    received = texts_by_phone(production.sandbox)
    assert set(received) == STAFF  # no parent, though the audience was "all"
    for phone, texts in received.items():
        assert len(texts) == 1 and texts[0].startswith("[TEST - EXERCISE] "), phone
    posts = production.sandbox.posts("twilio")
    assert {(p["account_sid"], p["messaging_service_sid"]) for p in posts} == {
        (ACCOUNT_SID, DRILL_SERVICE)
    }
    # The web rendition is marked too, and posted to the test page only.
    with db.session_scope(db_url) as session:
        web = session.scalars(select(Delivery).where(Delivery.channel == "web")).one()
        assert web.account == "test-web"
        html = session.execute(
            select(WebAlert.body).where(WebAlert.id == web.provider_id)
        ).scalar_one()
    assert "<strong>[TEST - EXERCISE]</strong>" in html
    # The record is honest: real provider accounts, not the sandbox.
    entries = delivery_entries(db_url, draft["id"])
    assert {e["account"] for e in entries} == {"drill-sms", "test-web"}
    assert len(entries) == len(STAFF) + 1
    assert all(e["sandbox"] is False for e in entries)


def test_a_test_message_is_refused_where_no_sandbox_runs(production, run, people, db_url):
    draft = compose(run, people, "test")
    [finding] = [f for f in draft["findings"] if f["check"] == "no_sandbox"]
    assert finding["severity"] == "block" and finding["channel"] == "sms"
    assert "drill-sms is served by the provider sandbox" in finding["detail"]
    assert "BROADCASTER_SANDBOX_URL is not set" in finding["detail"]
    refused = run("submit", str(draft["id"]), "--as", "ana", token=people["ana"])
    assert refused.exit_code == 2
    assert "drill-sms is served by the provider sandbox" in refused.output
    assert run.json("status", str(draft["id"]))["state"] == "draft"
    assert production.sandbox.requests("twilio") == []


def test_a_drill_on_a_sandbox_served_account_is_blocked_where_no_sandbox_runs(
    production, run, people
):
    """test-x and test-facebook have no credentials: with no sandbox, an exercise that includes
    them would fail at the worker, so it is blocked when composed, naming each."""
    draft = run.json(
        "compose",
        "lockdown",
        "--as",
        "ana",
        "--kind",
        "exercise",
        "--var",
        "school=lincoln-hs",
        token=people["ana"],
    )
    blocked = [f for f in draft["findings"] if f["check"] == "no_sandbox"]
    assert {(f["channel"], f["detail"].split(" ")[0]) for f in blocked} == {
        ("x", "test-x"),
        ("facebook", "test-facebook"),
    }
    assert all(f["severity"] == "block" for f in blocked)
    assert all("which this deployment does not run" in f["detail"] for f in blocked)


@ON_POSTGRESQL
def test_a_live_message_never_goes_to_the_drill_or_test_accounts(production, run, people, db_url):
    draft = compose(run, people, "actual")
    assert {(t["channel"], t["account"]) for t in draft["targets"]} == {
        ("sms", "district-sms"),
        ("web", "district-web"),
    }
    submit_and_approve(run, people, draft)
    production.start_worker()
    assert production.wait_done(draft["id"])["state"] == "sent"
    received = texts_by_phone(production.sandbox)
    assert set(received) == {*PARENTS, "+19515550199"}
    assert all(len(t) == 1 and "TEST" not in t[0] for t in received.values())
    posts = production.sandbox.posts("twilio")
    assert {p["messaging_service_sid"] for p in posts} == {DISTRICT_SERVICE}
    entries = delivery_entries(db_url, draft["id"])
    assert {e["account"] for e in entries} == {"district-sms", "district-web"}
    assert all(e["sandbox"] is False for e in entries)


def test_an_account_api_base_url_is_https_or_this_machine_and_never_carries_a_secret(run, tmp_path):
    """An attacker who can edit the district file (or a careless copy) cannot send an account's
    real credentials over plain HTTP to another host, hide a password in the URL, or give the
    web account one: the file is refused, one line naming the field, exit 2."""
    original = PRODUCTION.read_text(encoding="utf-8")
    (tmp_path / "roster.csv").write_text("first_name,last_name\n", encoding="utf-8")
    original = re.sub(r'(?m)^roster = ".*"$', 'roster = "roster.csv"', original)
    config = tmp_path / "district.toml"
    run.env["BROADCASTER_CONFIG"] = str(config)
    for account, url in [
        ("drill-sms", "http://api.twilio.example.net"),
        ("drill-sms", "http://10.0.0.7:8080"),
        ("drill-sms", "https://user:secret@api.twilio.example.net"),
        ("drill-sms", "ftp://api.twilio.example.net"),
        ("drill-sms", "api.twilio.example.net"),
        ("district-web", "https://api.example.net"),
    ]:
        config.write_text(
            original.replace(
                f'name = "{account}"\n', f'name = "{account}"\napi_base_url = "{url}"\n'
            ),
            encoding="utf-8",
        )
        refused = run("templates", "list")
        assert refused.exit_code == 2, url
        assert (
            refused.output.count("\n") == 1 and "api_base_url must be an https://" in refused.output
        )
        assert "secret" not in refused.output
    for url in ("https://api.dublin.ie1.twilio.com", "http://127.0.0.1:8975"):
        config.write_text(
            original.replace(
                'name = "drill-sms"\n', f'name = "drill-sms"\napi_base_url = "{url}"\n'
            ),
            encoding="utf-8",
        )
        assert run("templates", "list").exit_code == 0, url


def test_the_base_url_routes_provider_hosts_only_and_the_sandbox_still_wins(monkeypatch):
    """An exercise through a real account goes to its api_base_url with its own token and no
    sandbox; a test message through the same account goes to the sandbox with the sandbox's;
    in sandbox mode nothing but a provider host is reachable, api_base_url or not."""

    base = "https://api.dublin.ie1.twilio.com"
    transport = ProviderTransport(api_base_url=base)
    assert (
        transport.target("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?x=1")
        == f"{base}/2010-04-01/Accounts/AC1/Messages.json?x=1"
    )
    assert transport.target("https://example.org/a") == "https://example.org/a"
    both = ProviderTransport(sandbox_url="http://127.0.0.1:9", api_base_url=base)
    assert both.target("https://api.twilio.com/x") == "http://127.0.0.1:9/x"
    with pytest.raises(SandboxRefused):
        both.target("https://api.dublin.ie1.twilio.com.evil.example/x")

    text = PRODUCTION.read_text(encoding="utf-8").replace(
        'name = "drill-sms"\n', f'name = "drill-sms"\napi_base_url = "{base}"\n'
    )

    district = DistrictConfig.model_validate(tomllib.loads(text))
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    settings = Settings(sandbox_url="http://127.0.0.1:9")
    drill = account_config(settings, district, "drill-sms", "exercise")
    assert (drill.sandbox_url, drill.api_base_url) == (None, base)
    assert drill.credentials == {"auth_token": TOKEN}
    test = account_config(settings, district, "drill-sms", "test")
    assert (test.sandbox_url, test.api_base_url) == ("http://127.0.0.1:9", None)
    assert TOKEN not in test.credentials.values()


def test_one_worker_sends_an_exercise_for_real_and_a_test_to_the_sandbox(
    production, run, people, monkeypatch
):
    """Where a sandbox does run, the same drill account serves both kinds from one worker
    thread: the exercise through its own credentials, the test message through the sandbox's.
    An adapter built for one is never reused for the other."""
    from provider_sandbox import Sandbox

    with Sandbox(port=0) as rehearsals:
        run.env["BROADCASTER_SANDBOX_URL"] = rehearsals.url
        monkeypatch.setenv("BROADCASTER_SANDBOX_URL", rehearsals.url)
        production.start_worker(concurrency=1)
        for kind in ("exercise", "test"):
            draft = compose(run, people, kind, channels="sms")
            assert [f for f in draft["findings"] if f["severity"] == "block"] == []
            submit_and_approve(run, people, draft)
            assert production.wait_done(draft["id"])["state"] == "sent"
        real = texts_by_phone(production.sandbox)
        assert set(real) == STAFF
        assert all(t == [t[0]] and t[0].startswith("[TEST - EXERCISE] ") for t in real.values())
        rehearsed = texts_by_phone(rehearsals)
        assert set(rehearsed) == STAFF
        assert all(t == [t[0]] and t[0].startswith("[TEST] ") for t in rehearsed.values())
