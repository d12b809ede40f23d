"""The provider sandbox itself: the three APIs as the real SDKs see them, the request log, fault
rules, status callbacks, the control endpoints over HTTP and `python -m provider_sandbox`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import facebook
import pytest
import requests
import tweepy
from requests_oauthlib import OAuth1
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from channel_adapters import AccountConfig, DeliveryError, Outcome, build
from channel_adapters.transport import mount
from provider_sandbox import PROVIDERS, FaultRule, RemoteSandbox, Sandbox, segments

ROOT = Path(__file__).resolve().parents[2]
SID = "AC" + "c3" * 16
TOKEN = "sandbox-test-auth-token"
SERVICE = "MG" + "d4" * 16
X_TOKEN = "2200-access-token"
X_SECRETS = {"consumer_key": "ck", "consumer_secret": "cs", "access_token_secret": "ats"}
# Every request a test makes to the sandbox gives up rather than hang the suite.
TIMEOUT = 10


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(
        twilio_auth_tokens={SID: TOKEN},
        x_accounts={X_TOKEN: {"username": "district", **X_SECRETS}},
        twilio_status_delay_s=0.02,
        callback_retries=2,
        callback_timeout_s=0.5,
    ) as sb:
        yield sb


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def graph_post(
    sb: Sandbox, message: str, token: str = "page-token", timeout: float = TIMEOUT, **kw: Any
) -> Any:
    data = {"message": message, "access_token": token}
    return requests.post(f"{sb.url}/v21.0/42/feed", data=data, timeout=timeout, **kw)


def twilio_client(sb: Sandbox, token: str = TOKEN) -> Client:
    http = TwilioHttpClient(timeout=5)
    mount(http.session, sandbox_url=sb.url, timeout=5)
    return Client(SID, token, http_client=http)


def x_client(sb: Sandbox) -> tweepy.Client:
    client = tweepy.Client(
        consumer_key="ck", consumer_secret="cs", access_token=X_TOKEN, access_token_secret="ats"
    )
    mount(client.session, sandbox_url=sb.url, timeout=5)
    return client


# -- the three APIs --------------------------------------------------------------------------------


def test_every_provider_demands_its_credentials(sandbox: Sandbox) -> None:
    url = sandbox.url
    x = requests.post(f"{url}/2/tweets", json={"text": "hi"}, timeout=TIMEOUT)
    assert x.status_code == 401 and x.json()["title"] == "Unauthorized"
    bearer = requests.post(
        f"{url}/2/tweets", json={"text": "hi"}, headers={"Authorization": "x"}, timeout=TIMEOUT
    )
    assert bearer.status_code == 401

    graph = requests.post(f"{url}/v21.0/42/feed", data={"message": "hi"}, timeout=TIMEOUT)
    assert graph.status_code == 400
    error = graph.json()["error"]
    assert error["code"] == 104 and error["type"] == "OAuthException" and error["fbtrace_id"]

    messages = f"{url}/2010-04-01/Accounts/{SID}/Messages.json"
    form = {"To": "+15551112222", "Body": "hi", "MessagingServiceSid": SERVICE}
    for auth in (None, (SID, "wrong"), ("AC" + "0" * 32, TOKEN)):
        twilio = requests.post(messages, data=form, auth=auth, timeout=TIMEOUT)
        assert twilio.status_code == 401
        assert twilio.json()["code"] == 20003
        assert twilio.headers["WWW-Authenticate"].startswith("Basic")
    assert requests.post(messages, data=form, auth=(SID, TOKEN), timeout=TIMEOUT).status_code == 201
    assert [p["body"] for p in sandbox.posts("twilio")] == ["hi"]
    assert sandbox.posts("x") == [] and sandbox.posts("facebook") == []


@pytest.mark.parametrize("callback", ["file:///etc/passwd", "gopher://x/", "ftp://x/", "x"])
def test_a_status_callback_that_is_not_http_is_refused_like_twilio_does(sandbox, callback):
    form = {"To": "+15551112222", "Body": "hi", "MessagingServiceSid": SERVICE}
    answer = requests.post(
        f"{sandbox.url}/2010-04-01/Accounts/{SID}/Messages.json",
        data={**form, "StatusCallback": callback},
        auth=(SID, TOKEN),
        timeout=TIMEOUT,
    )
    assert answer.status_code == 400 and answer.json()["code"] == 21609
    assert sandbox.posts("twilio") == []


def test_x_oauth1_signatures_are_verified(sandbox: Sandbox) -> None:
    session = requests.Session()
    mount(session, sandbox_url=sandbox.url, timeout=5)
    url = "https://api.twitter.com/2/users/2200/tweets?max_results=5"
    good = OAuth1("ck", "cs", X_TOKEN, "ats")
    assert session.get(url, auth=good).status_code == 200
    for bad in (OAuth1("ck", "nope", X_TOKEN, "ats"), OAuth1("ck", "cs", "9-unknown", "ats")):
        assert session.get(url, auth=bad).status_code == 401
    assert session.get("https://api.x.com/2/users/me", auth=good).json()["data"] == {
        "id": "2200",
        "username": "district",
        "name": "district",
    }


def test_x_timeline_pages_newest_first(sandbox: Sandbox) -> None:
    client = x_client(sandbox)
    since = datetime.now(UTC) - timedelta(seconds=2)
    ids = [client.create_tweet(text=f"update {n}", user_auth=True).data["id"] for n in range(12)]
    client.delete_tweet(ids[3], user_auth=True)

    pages = tweepy.Paginator(
        client.get_users_tweets,
        "2200",
        max_results=5,
        start_time=since,
        tweet_fields=["created_at"],
        user_auth=True,
    )
    tweets = list(pages.flatten())
    assert [str(t.id) for t in tweets] == [i for i in reversed(ids) if i != ids[3]]
    assert all(t.created_at is not None for t in tweets)
    with pytest.raises(tweepy.BadRequest, match="between 5 and 100"):
        client.get_users_tweets("2200", max_results=1, user_auth=True)
    tomorrow = datetime.now(UTC) + timedelta(1)
    later = client.get_users_tweets("2200", start_time=tomorrow, user_auth=True)
    assert later.data is None and later.meta["result_count"] == 0
    with pytest.raises(tweepy.NotFound):
        client.delete_tweet(ids[3], user_auth=True)


def test_x_rejects_duplicates_only_of_live_posts(sandbox: Sandbox) -> None:
    client = x_client(sandbox)
    first = client.create_tweet(text="Same words", user_auth=True).data["id"]
    with pytest.raises(tweepy.Forbidden, match="duplicate content"):
        client.create_tweet(text="Same words", user_auth=True)
    client.delete_tweet(first, user_auth=True)
    assert client.create_tweet(text="Same words", user_auth=True).data["id"] != first


def test_graph_feed_pages_with_the_sdk(sandbox: Sandbox) -> None:
    graph = facebook.GraphAPI("page-token", timeout=5, version="3.1", session=requests.Session())
    mount(graph.session, sandbox_url=sandbox.url, timeout=5)
    graph.version = "v21.0"
    ids = [graph.put_object("42", "feed", message=f"post {n}")["id"] for n in range(7)]
    assert all(i.startswith("42_") for i in ids)
    assert graph.get_object(ids[0])["message"] == "post 0"
    everything = list(graph.get_all_connections("42", "feed", limit=3))
    assert [p["id"] for p in everything] == list(reversed(ids))
    assert graph.delete_object(ids[0]) == {"success": True}
    with pytest.raises(facebook.GraphAPIError) as info:
        graph.delete_object(ids[0])
    assert info.value.code == 100
    with pytest.raises(facebook.GraphAPIError, match="Missing message"):
        graph.put_object("42", "feed", message="")


def test_graph_tokens_are_checked_when_configured() -> None:
    with Sandbox(facebook_page_tokens={"good": "42"}) as sb:
        assert graph_post(sb, "hi", "good").status_code == 200
        assert graph_post(sb, "hi", "bad").json()["error"]["code"] == 190
        other = requests.post(
            f"{sb.url}/v21.0/43/feed",
            data={"message": "x", "access_token": "good"},
            timeout=TIMEOUT,
        )
        assert other.status_code == 403 and other.json()["error"]["code"] == 200


def test_twilio_messages_list_filter_page_and_fetch(sandbox: Sandbox) -> None:
    client = twilio_client(sandbox)
    a, b = "+15551110001", "+15551110002"
    sids = [
        client.messages.create(
            to=a if n % 2 == 0 else b, body=f"m{n}", messaging_service_sid=SERVICE
        ).sid
        for n in range(7)
    ]
    to_a = client.messages.list(to=a, page_size=2)
    assert [m.sid for m in to_a] == [sids[6], sids[4], sids[2], sids[0]]
    assert all(m.sid.startswith("SM") and len(m.sid) == 34 for m in to_a)

    assert wait_for(lambda: all(m.status == "delivered" for m in client.messages.list()))
    after = datetime.now(UTC) - timedelta(minutes=5)
    assert len(client.messages.list(to=b, date_sent_after=after)) == 3
    assert client.messages.list(date_sent_after=datetime.now(UTC) + timedelta(1)) == []
    fetched = client.messages(sids[0]).fetch()
    assert fetched.body == "m0" and fetched.to == a and fetched.date_sent is not None
    assert fetched.from_ and fetched.num_segments == "1"
    with pytest.raises(TwilioRestException) as info:
        client.messages("SM" + "0" * 32).fetch()
    assert info.value.status == 404 and info.value.code == 20404


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"Body": "x", "MessagingServiceSid": SERVICE}, 21604),
        ({"To": "+15551110001", "MessagingServiceSid": SERVICE}, 21602),
        ({"To": "+15551110001", "Body": "x"}, 21603),
        ({"To": "+15551110001", "Body": "x" * 1601, "MessagingServiceSid": SERVICE}, 21617),
        ({"To": "15551110001", "Body": "x", "MessagingServiceSid": SERVICE}, 21211),
        ({"To": "+15005550001", "Body": "x", "MessagingServiceSid": SERVICE}, 21211),
    ],
)
def test_twilio_validates_like_twilio(sandbox: Sandbox, form: dict[str, str], code: int) -> None:
    url = f"{sandbox.url}/2010-04-01/Accounts/{SID}/Messages.json"
    response = requests.post(url, data=form, auth=(SID, TOKEN), timeout=TIMEOUT)
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert sandbox.posts("twilio") == []


def test_sms_segments() -> None:
    assert segments("Schools closed") == 1
    assert segments("x" * 160) == 1 and segments("x" * 161) == 2
    assert segments("€" * 80) == 1 and segments("€" * 81) == 2  # extension chars cost two
    assert segments("Escuelas cerradas: ¡ñ!") == 1  # all GSM-7
    assert segments("日本" * 35) == 1 and segments("日本" * 35 + "x") == 2  # UCS-2 70/67


def test_unknown_paths_are_logged_and_refused(sandbox: Sandbox) -> None:
    assert requests.get(f"{sandbox.url}/nowhere", timeout=TIMEOUT).status_code == 404
    [entry] = sandbox.requests()
    assert entry["provider"] == "unknown" and entry["status"] == 404


# -- the request log and control over HTTP ---------------------------------------------------------


def test_request_log_records_everything_but_secrets(sandbox: Sandbox) -> None:
    graph_post(sandbox, "Snow day", token="very-secret-page-token")
    requests.get(
        f"{sandbox.url}/v21.0/42/feed?access_token=very-secret-page-token&limit=5", timeout=TIMEOUT
    )
    [post, feed] = sandbox.requests("facebook")
    assert post["method"] == "POST" and post["path"] == "/v21.0/42/feed"
    assert post["body"] == {"message": "Snow day", "access_token": "[redacted]"}
    assert post["status"] == 200 and post["fault"] is None
    assert post["resource_id"] == sandbox.posts("facebook")[0]["id"]
    assert datetime.fromisoformat(post["time"]) <= datetime.fromisoformat(feed["time"])
    assert feed["query"] == {"access_token": "[redacted]", "limit": "5"}
    assert post["seq"] < feed["seq"]
    assert "very-secret-page-token" not in json.dumps(sandbox.requests())
    assert sandbox.requests("x") == []


def test_control_endpoints_over_http(sandbox: Sandbox) -> None:
    remote = RemoteSandbox(sandbox.url)
    rule = {"provider": "facebook", "fault": "status", "status": 503, "count": 1}
    remote.set_faults([rule])
    assert remote.faults() == [{**rule, "applied": 0}]
    assert graph_post(sandbox, "a").status_code == 503
    assert graph_post(sandbox, "b").status_code == 200
    assert remote.faults()[0]["applied"] == 1 and remote.faults()[0]["count"] == 0
    assert [r["status"] for r in remote.requests("facebook")] == [503, 200]
    assert [r["fault"] for r in remote.requests()] == ["status", None]
    assert [p["message"] for p in remote.posts("facebook")] == ["b"]
    everything = requests.get(f"{sandbox.url}/_sandbox/posts", timeout=TIMEOUT).json()
    assert set(everything) == set(PROVIDERS) >= {"x", "facebook", "twilio", "voice"}

    bad = requests.post(
        f"{sandbox.url}/_sandbox/faults", json=[{"fault": "explode"}], timeout=TIMEOUT
    )
    assert bad.status_code == 400 and "fault must be one of" in bad.json()["error"]
    with pytest.raises(ValueError, match="unknown fault rule keys"):
        remote.set_faults([{"fault": "drop", "cuont": 1}])

    remote.reset()
    assert remote.requests() == [] and remote.posts("facebook") == [] and remote.faults() == []
    assert requests.get(f"{sandbox.url}/_sandbox/health", timeout=TIMEOUT).json() == {"ok": True}


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"fault": "status"}, "status must be an HTTP status"),
        ({"fault": "status", "status": 700}, "status must be an HTTP status"),
        ({"fault": "latency"}, "latency_ms > 0"),
        ({"fault": "drop", "provider": "myspace"}, "provider must be one of"),
        ({"fault": "drop", "rate": 2}, "rate must be a number between 0 and 1"),
        ({"fault": "drop", "count": -1}, "count must be a non-negative integer"),
        ({"fault": "drop", "path": "("}, "not a valid regular expression"),
        ({"fault": "drop", "cuont": 1}, "unknown fault rule keys: cuont"),
    ],
)
def test_invalid_fault_rules_are_refused(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FaultRule.parse(rule)


# -- faults ----------------------------------------------------------------------------------------


def test_short_spellings_are_accepted() -> None:
    assert FaultRule.parse({"fault": "latency", "ms": 15}).latency_ms == 15
    assert FaultRule.parse({"fault": "rate_limit", "retry_after": 1}).retry_after_s == 1


def test_rules_apply_in_order_and_expire(sandbox: Sandbox) -> None:
    sandbox.set_faults(
        [
            {"provider": "facebook", "fault": "status", "status": 503, "count": 2},
            {"provider": "facebook", "fault": "status", "status": 500, "count": 1},
            {"provider": "x", "fault": "status", "status": 502},
            {"provider": "facebook", "fault": "status", "status": 418, "method": "GET"},
        ]
    )
    assert [graph_post(sandbox, f"m{n}").status_code for n in range(4)] == [503, 503, 500, 200]
    assert (
        requests.get(f"{sandbox.url}/v21.0/42/feed?access_token=t", timeout=TIMEOUT).status_code
        == 418
    )
    assert [r["applied"] for r in sandbox.faults()] == [2, 1, 0, 1]


def test_a_seeded_rate_is_deterministic() -> None:
    rule = {"provider": "*", "fault": "status", "status": 503, "rate": 0.5, "seed": 42}
    runs = []
    for _ in range(2):
        with Sandbox() as sb:
            sb.set_faults([rule])
            runs.append([graph_post(sb, f"m{n}").status_code for n in range(24)])
    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 503}


def test_drop_closes_the_connection_before_creating_anything(sandbox: Sandbox) -> None:
    sandbox.set_faults([{"fault": "drop", "count": 1}])
    with pytest.raises(requests.ConnectionError):
        graph_post(sandbox, "lost", timeout=5)
    [entry] = sandbox.requests()
    assert entry["fault"] == "drop" and entry["status"] is None and entry["resource_id"] is None
    assert sandbox.posts("facebook") == []
    assert graph_post(sandbox, "next").status_code == 200


def test_timeout_after_accept_creates_then_holds(sandbox: Sandbox) -> None:
    sandbox.set_faults([{"fault": "timeout_after_accept", "hold_ms": 3000, "count": 1}])
    with pytest.raises(requests.ReadTimeout):
        graph_post(sandbox, "held", timeout=0.3)
    [entry] = sandbox.requests()
    [post] = sandbox.posts("facebook")
    assert entry["fault"] == "timeout_after_accept" and entry["status"] == 200
    assert entry["resource_id"] == post["id"] and post["message"] == "held"


def test_rate_limit_answers_carry_each_providers_headers(sandbox: Sandbox) -> None:
    sandbox.set_faults([{"fault": "rate_limit", "retry_after_s": 90}])
    x = requests.post(
        f"{sandbox.url}/2/tweets",
        json={"text": "x"},
        auth=OAuth1("ck", "cs", X_TOKEN, "ats"),
        timeout=TIMEOUT,
    )
    assert x.status_code == 429 and x.headers["x-rate-limit-remaining"] == "0"
    assert abs(int(x.headers["x-rate-limit-reset"]) - (time.time() + 90)) < 5
    twilio = requests.get(f"{sandbox.url}/2010-04-01/Accounts/{SID}/Messages.json", timeout=TIMEOUT)
    assert twilio.status_code == 429 and twilio.headers["Retry-After"] == "90"
    assert twilio.json()["code"] == 20429
    graph = graph_post(sandbox, "x")
    assert graph.status_code == 400 and graph.json()["error"]["code"] == 32
    usage = json.loads(graph.headers["X-Business-Use-Case-Usage"])
    assert usage["sandbox"][0]["estimated_time_to_regain_access"] == 2


def test_latency_rules_add_up(sandbox: Sandbox) -> None:
    sandbox.set_faults(
        [
            {"fault": "latency", "latency_ms": 20},
            {"provider": "facebook", "fault": "latency", "latency_ms": 30},
        ]
    )
    assert graph_post(sandbox, "slow").status_code == 200
    assert sandbox.requests()[0]["latency_ms"] == 50


def test_stop_releases_held_requests() -> None:
    sb = Sandbox().start()
    sb.set_faults([{"fault": "timeout_after_accept", "hold_ms": 60_000}])
    outcome: list[str] = []

    def call() -> None:
        try:
            graph_post(sb, "held", timeout=30)
            outcome.append("answered")
        except requests.RequestException as exc:
            outcome.append(type(exc).__name__)

    thread = threading.Thread(target=call)
    thread.start()
    assert wait_for(lambda: len(sb.requests()) == 1)
    sb.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert outcome == ["ConnectionError"]


# -- concurrency -----------------------------------------------------------------------------------


def test_concurrent_requests_are_each_logged_once(sandbox: Sandbox) -> None:
    def worker(n: int) -> None:
        with requests.Session() as session:
            for k in range(10):
                data = {"message": f"{n}-{k}", "access_token": "t"}
                assert session.post(f"{sandbox.url}/v21.0/42/feed", data=data).status_code == 200

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log = sandbox.requests()
    assert [e["seq"] for e in log] == list(range(1, 161))
    assert len({e["resource_id"] for e in log}) == 160
    posts = sandbox.posts("facebook")
    assert sorted(p["message"] for p in posts) == sorted(
        f"{n}-{k}" for n in range(16) for k in range(10)
    )


# -- status callbacks ------------------------------------------------------------------------------


def test_a_dead_callback_url_is_retried_then_dropped(sandbox: Sandbox) -> None:
    client = twilio_client(sandbox)
    dead = f"http://127.0.0.1:{free_port()}/status"
    sid = client.messages.create(
        to="+15551110003", body="x", messaging_service_sid=SERVICE, status_callback=dead
    ).sid

    def callbacks() -> list[dict[str, Any]]:
        return sandbox.posts("twilio")[0]["callbacks"]

    assert wait_for(lambda: len(callbacks()) == 2)
    assert [c["status"] for c in callbacks()] == ["sent", "delivered"]
    assert all(c["attempts"] == 3 and not c["ok"] for c in callbacks())
    assert client.messages(sid).fetch().status == "delivered"  # still serving


# -- the command line ------------------------------------------------------------------------------


def test_python_m_provider_sandbox_is_steered_over_http() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "provider_sandbox",
            "--port",
            "0",
            "--twilio-auth-token",
            f"{SID}={TOKEN}",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on http://127.0.0.1:" in line
        url = line.strip().rsplit(" ", 1)[1]
        remote = RemoteSandbox(url)
        sms = build(
            AccountConfig(
                "sms",
                "sms",
                {"account_sid": SID, "messaging_service_sid": SERVICE},
                {"auth_token": TOKEN},
                sandbox_url=url,
            )
        )
        receipt = sms.send("From another process", to="+15551110004")
        [entry] = remote.requests("twilio")
        assert entry["resource_id"] == receipt.provider_id
        assert [m["body"] for m in remote.posts("twilio")] == ["From another process"]

        remote.set_faults([{"provider": "twilio", "fault": "status", "status": 503}])
        with pytest.raises(DeliveryError) as info:
            sms.send("Again", to="+15551110004")
        assert info.value.outcome is Outcome.RETRYABLE
        remote.reset()
        assert remote.requests() == [] and remote.posts("twilio") == []
    finally:
        process.terminate()
        process.wait(10)
    assert process.returncode == 0
