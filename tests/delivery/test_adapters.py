"""The channel adapters on the real SDKs (tweepy, facebook-sdk, twilio), over loopback to a real
provider sandbox. Table-driven: every behaviour runs for each channel unless it is specific."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
from twilio.request_validator import RequestValidator

from channel_adapters import (
    AccountConfig,
    DeliveryError,
    Outcome,
    Receipt,
    adapter_for,
    build,
)
from channel_adapters.facebook import FacebookAdapter, PageGraph
from channel_adapters.sms import SmsAdapter
from channel_adapters.transport import ProviderTransport, SandboxRefused
from channel_adapters.x import XAdapter
from provider_sandbox import Sandbox

TWILIO_SID = "AC" + "a1" * 16
TWILIO_TOKEN = "twilio-auth-token-s3cr3t"
SERVICE_SID = "MG" + "b2" * 16
X_USER_ID = "1500"
X_CREDENTIALS = {
    "consumer_key": "x-consumer-key-s3cr3t",
    "consumer_secret": "x-consumer-secret-s3cr3t",
    "access_token": f"{X_USER_ID}-x-access-token-s3cr3t",
    "access_token_secret": "x-access-token-secret-s3cr3t",
}
PAGE_ID = "104729384756"
FB_TOKEN = "fb-page-access-token-s3cr3t"
PHONE = "+15551230001"
SHORT = 0.5  # the client timeout for the timeout tests; the sandbox holds responses longer


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    x_account = {
        "id": X_USER_ID,
        "username": "district_sd",
        "consumer_key": X_CREDENTIALS["consumer_key"],
        "consumer_secret": X_CREDENTIALS["consumer_secret"],
        "access_token_secret": X_CREDENTIALS["access_token_secret"],
    }
    with Sandbox(
        twilio_auth_tokens={TWILIO_SID: TWILIO_TOKEN},
        x_accounts={X_CREDENTIALS["access_token"]: x_account},
        facebook_page_tokens={FB_TOKEN: PAGE_ID},
        twilio_status_delay_s=0.02,
        callback_retries=1,
    ) as sb:
        yield sb


@dataclass(frozen=True)
class Channel:
    name: str
    provider: str
    settings: dict[str, str]
    credentials: dict[str, str]
    to: str | None
    url_prefix: str | None
    bad_credentials: dict[str, str]
    auth_message: str
    retractable: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def account(self, url: str | None, timeout_s: float = 5.0, **changes: Any) -> AccountConfig:
        settings = {**self.settings, **changes.pop("settings", {})}
        credentials = {**self.credentials, **changes.pop("credentials", {})}
        return AccountConfig(
            name=f"district-{self.name}",
            channel=self.name,
            settings=settings,
            credentials=credentials,
            sandbox_url=url,
            timeout_s=timeout_s,
        )

    def adapter(self, sandbox: Sandbox | None, timeout_s: float = 5.0, **changes: Any) -> Any:
        return build(self.account(sandbox.url if sandbox else None, timeout_s, **changes))


CHANNELS = [
    Channel(
        name="x",
        provider="x",
        settings={"user_id": X_USER_ID, "username": "district_sd"},
        credentials=X_CREDENTIALS,
        to=None,
        url_prefix="https://x.com/district_sd/status/",
        bad_credentials={"consumer_secret": "wrong-consumer-secret"},
        auth_message="Unauthorized",
    ),
    Channel(
        name="facebook",
        provider="facebook",
        settings={"page_id": PAGE_ID, "graph_version": "v21.0"},
        credentials={"page_access_token": FB_TOKEN},
        to=None,
        url_prefix=f"https://www.facebook.com/{PAGE_ID}_",
        bad_credentials={"page_access_token": "fb-revoked-token"},
        auth_message="Invalid OAuth access token",
    ),
    Channel(
        name="sms",
        provider="twilio",
        settings={"account_sid": TWILIO_SID, "messaging_service_sid": SERVICE_SID},
        credentials={"auth_token": TWILIO_TOKEN},
        to=PHONE,
        url_prefix=None,
        bad_credentials={"auth_token": "twilio-wrong-token"},
        auth_message="Authenticate",
        retractable=False,
    ),
]


@pytest.fixture(params=CHANNELS, ids=lambda c: c.name)
def channel(request: pytest.FixtureRequest) -> Channel:
    return request.param


def ago(seconds: float = 2) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


def fails(call: Callable[[], Any], *secrets: str) -> DeliveryError:
    """The DeliveryError `call` raises; its text and raw error never hold a secret."""
    with pytest.raises(DeliveryError) as info:
        call()
    err = info.value
    assert "\n" not in str(err)
    everything = f"{err} {err.raw!r}"
    for secret in (*X_CREDENTIALS.values(), FB_TOKEN, TWILIO_TOKEN, *secrets):
        assert secret not in everything
    return err


def creates(sandbox: Sandbox, channel: Channel) -> list[dict[str, Any]]:
    return [r for r in sandbox.requests(channel.provider) if r["method"] == "POST"]


def live(sandbox: Sandbox, channel: Channel) -> list[dict[str, Any]]:
    return [p for p in sandbox.posts(channel.provider) if not p["deleted"]]


def text_of(post: dict[str, Any]) -> str:
    return post.get("text") or post.get("message") or post["body"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- send, lookup, retract -------------------------------------------------------------------------


def test_send_lookup_retract(sandbox: Sandbox, channel: Channel) -> None:
    adapter = channel.adapter(sandbox)
    since = ago()
    text = f"Schools closed today ({channel.name}). Cerradas hoy: ¡tormenta!"

    receipt = adapter.send(text, to=channel.to)

    assert receipt.provider_id
    assert receipt.raw  # the provider's own JSON
    if channel.url_prefix:
        assert receipt.url == f"{channel.url_prefix}{receipt.provider_id.split('_')[-1]}"
    else:
        assert receipt.url is None
    [post] = live(sandbox, channel)
    assert text_of(post) == text
    [create] = creates(sandbox, channel)
    assert create["resource_id"] == receipt.provider_id and create["fault"] is None

    found = adapter.lookup(text, to=channel.to, since=since)
    assert found is not None and found.provider_id == receipt.provider_id
    assert adapter.lookup("some other text", to=channel.to, since=since) is None
    assert adapter.lookup(text, to=channel.to, since=datetime.now(UTC) + timedelta(1)) is None

    if channel.retractable:
        adapter.retract(receipt)
        assert live(sandbox, channel) == []
        assert adapter.lookup(text, to=channel.to, since=since) is None
        adapter.retract(receipt)  # retracting again is harmless (a retried delete)
    else:
        err = fails(lambda: adapter.retract(receipt))
        assert err.outcome is Outcome.PERMANENT
        assert "cannot be retracted" in str(err)


def test_a_fresh_adapter_finds_what_another_sent(sandbox: Sandbox, channel: Channel) -> None:
    """Reconciliation happens in another worker (thread or process) with its own client."""
    receipt = channel.adapter(sandbox).send("Route 12 is running 30 minutes late", to=channel.to)
    found = channel.adapter(sandbox).lookup(
        "Route 12 is running 30 minutes late", to=channel.to, since=ago()
    )
    assert found is not None and found.provider_id == receipt.provider_id


@pytest.mark.parametrize("user_id", ["", "999999"])
def test_x_looks_up_the_tokens_own_user(sandbox: Sandbox, user_id: str) -> None:
    """No username setting: the URL comes from get_me. A wrong user_id setting does not send
    the lookup to someone else's timeline."""
    x = CHANNELS[0].adapter(sandbox, settings={"user_id": user_id, "username": ""})
    receipt = x.send("Snow day: all schools closed")
    assert receipt.url == f"https://x.com/district_sd/status/{receipt.provider_id}"
    found = x.lookup("Snow day: all schools closed", since=ago())
    assert found is not None
    assert (found.provider_id, found.url) == (receipt.provider_id, receipt.url)
    paths = [r["path"] for r in sandbox.requests("x")]
    assert paths.count("/2/users/me") == 1  # asked once per adapter
    assert f"/2/users/{X_USER_ID}/tweets" in paths


def test_reply_and_validity_reach_the_provider(sandbox: Sandbox) -> None:
    x, sms = CHANNELS[0].adapter(sandbox), CHANNELS[2].adapter(sandbox)
    first = x.send("Lockdown at Lincoln HS")
    update = x.send("Lockdown lifted at Lincoln HS", reply_to=first.provider_id)
    posts = {p["id"]: p for p in sandbox.posts("x")}
    assert posts[update.provider_id]["in_reply_to_tweet_id"] == first.provider_id

    sms.send("Buses delayed", to=PHONE, valid_for_s=900, reply_to="ignored")
    [message] = sandbox.posts("twilio")
    assert message["validity_period"] == 900
    [create] = creates(sandbox, CHANNELS[2])
    assert create["body"]["ValidityPeriod"] == "900"
    assert create["body"]["MessagingServiceSid"] == SERVICE_SID


# -- faults ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retryable(sandbox: Sandbox, channel: Channel, status: int) -> None:
    sandbox.set_faults([{"provider": channel.provider, "fault": "status", "status": status}])
    adapter = channel.adapter(sandbox)
    err = fails(lambda: adapter.send("Early dismissal at noon", to=channel.to))
    assert err.outcome is Outcome.RETRYABLE
    assert str(status) in str(err)
    assert err.raw["http_status"] == status
    assert live(sandbox, channel) == []
    lookup_err = fails(lambda: adapter.lookup("Early dismissal", to=channel.to, since=ago()))
    assert lookup_err.outcome is Outcome.RETRYABLE

    sandbox.set_faults([])
    assert adapter.send("Early dismissal at noon", to=channel.to).provider_id


def test_rate_limit_is_retryable_with_retry_after(sandbox: Sandbox, channel: Channel) -> None:
    sandbox.set_faults(
        [{"provider": channel.provider, "fault": "rate_limit", "retry_after_s": 120, "count": 1}]
    )
    err = fails(lambda: channel.adapter(sandbox).send("Snow day", to=channel.to))
    assert err.outcome is Outcome.RETRYABLE
    assert err.retry_after is not None
    assert 115 <= err.retry_after <= 121  # X sends an epoch reset time: allow for the clock
    [create] = creates(sandbox, channel)
    assert create["fault"] == "rate_limit"
    assert live(sandbox, channel) == []


@pytest.mark.parametrize(
    ("code", "http_status"), [(4, 403), (17, 400), (32, 400), (613, 400), (80001, 400)]
)
def test_graph_throttling_codes_are_retryable(
    sandbox: Sandbox, code: int, http_status: int
) -> None:
    sandbox.set_faults(
        [{"provider": "facebook", "fault": "rate_limit", "code": code, "retry_after_s": 300}]
    )
    err = fails(lambda: CHANNELS[1].adapter(sandbox).send("Game cancelled"))
    assert err.outcome is Outcome.RETRYABLE
    assert err.retry_after == 300
    assert err.raw["http_status"] == http_status
    assert err.raw["body"]["error"]["code"] == code


def test_timeout_after_accept_is_ambiguous_and_lookup_finds_the_post(
    sandbox: Sandbox, channel: Channel
) -> None:
    sandbox.set_faults(
        [
            {
                "provider": channel.provider,
                "fault": "timeout_after_accept",
                "method": "POST",
                "hold_ms": 3000,
                "count": 1,
            }
        ]
    )
    adapter = channel.adapter(sandbox, timeout_s=SHORT)
    since = ago()
    text = "Shelter in place: Jefferson ES"

    err = fails(lambda: adapter.send(text, to=channel.to))

    assert err.outcome is Outcome.AMBIGUOUS
    [create] = creates(sandbox, channel)
    assert create["fault"] == "timeout_after_accept"
    assert create["resource_id"]  # the post exists although the client saw a timeout
    found = adapter.lookup(text, to=channel.to, since=since)
    assert found is not None and found.provider_id == create["resource_id"]
    assert len(live(sandbox, channel)) == 1


def test_drop_before_anything_is_created(sandbox: Sandbox, channel: Channel) -> None:
    sandbox.set_faults([{"provider": channel.provider, "fault": "drop", "count": 1}])
    adapter = channel.adapter(sandbox)
    since = ago()

    err = fails(lambda: adapter.send("Water main break: school closed", to=channel.to))

    # The request went out and no answer came back: the client cannot tell whether the provider
    # acted, so it must look before resending. Here the lookup shows nothing was published.
    assert err.outcome is Outcome.AMBIGUOUS
    [create] = creates(sandbox, channel)
    assert create["fault"] == "drop" and create["status"] is None
    assert live(sandbox, channel) == []
    assert adapter.lookup("Water main break: school closed", to=channel.to, since=since) is None


def test_drop_on_a_lookup_is_retryable(sandbox: Sandbox, channel: Channel) -> None:
    sandbox.set_faults(
        [{"provider": channel.provider, "fault": "drop", "method": "GET", "count": 1}]
    )
    adapter = channel.adapter(sandbox)
    err = fails(lambda: adapter.lookup("anything", to=channel.to, since=ago()))
    assert err.outcome is Outcome.RETRYABLE  # a read is safe to repeat
    assert adapter.lookup("anything", to=channel.to, since=ago()) is None


def test_read_timeout_on_a_lookup_is_retryable(sandbox: Sandbox, channel: Channel) -> None:
    sandbox.set_faults(
        [
            {
                "provider": channel.provider,
                "fault": "timeout_after_accept",
                "method": "GET",
                "hold_ms": 3000,
                "count": 1,
            }
        ]
    )
    err = fails(lambda: channel.adapter(sandbox, SHORT).lookup("x", to=channel.to, since=ago()))
    assert err.outcome is Outcome.RETRYABLE


def test_connection_refused_is_retryable(channel: Channel) -> None:
    adapter = build(channel.account(f"http://127.0.0.1:{free_port()}", timeout_s=2))
    err = fails(lambda: adapter.send("Late start", to=channel.to))
    assert err.outcome is Outcome.RETRYABLE
    assert "request not sent" in str(err)


def test_latency_is_only_a_delay(sandbox: Sandbox, channel: Channel) -> None:
    sandbox.set_faults([{"provider": channel.provider, "fault": "latency", "latency_ms": 50}])
    assert channel.adapter(sandbox).send("Picture day moved", to=channel.to).provider_id
    assert all(r["latency_ms"] == 50 for r in sandbox.requests(channel.provider))


def test_bad_credentials_are_permanent(sandbox: Sandbox, channel: Channel) -> None:
    bad = channel.adapter(sandbox, credentials=channel.bad_credentials)
    err = fails(lambda: bad.send("Closed today", to=channel.to), *channel.bad_credentials.values())
    assert err.outcome is Outcome.PERMANENT
    assert channel.auth_message in str(err)
    assert err.raw["body"]
    assert live(sandbox, channel) == []


def test_invalid_number_is_permanent_with_twilios_message(sandbox: Sandbox) -> None:
    sms = CHANNELS[2].adapter(sandbox)
    for number in ("+15005550001", "555-1234"):
        err = fails(lambda n=number: sms.send("Closed today", to=n))
        assert err.outcome is Outcome.PERMANENT
        assert f"The 'To' number {number} is not a valid phone number." in str(err)
        assert "21211" in str(err)
        assert err.raw["body"]["code"] == 21211
    assert fails(lambda: sms.send("no recipient")).outcome is Outcome.PERMANENT


def test_x_duplicate_content_is_ambiguous_and_the_original_is_found(sandbox: Sandbox) -> None:
    x = CHANNELS[0].adapter(sandbox)
    since = ago()
    original = x.send("Schools closed Monday, March 3")
    err = fails(lambda: x.send("Schools closed Monday, March 3"))
    assert err.outcome is Outcome.AMBIGUOUS
    assert "duplicate content" in str(err)
    assert err.raw["http_status"] == 403
    found = x.lookup("Schools closed Monday, March 3", since=since)
    assert found is not None and found.provider_id == original.provider_id


def test_graph_duplicate_status_is_ambiguous_other_4xx_permanent(sandbox: Sandbox) -> None:
    fb = CHANNELS[1].adapter(sandbox)
    sandbox.set_faults(
        [
            {
                "provider": "facebook",
                "fault": "status",
                "status": 400,
                "code": 506,
                "message": "Duplicate status message",
                "count": 1,
            },
            {"provider": "facebook", "fault": "status", "status": 400, "count": 1},
        ]
    )
    assert fails(lambda: fb.send("Same text")).outcome is Outcome.AMBIGUOUS
    err = fails(lambda: fb.send("Same text"))
    assert err.outcome is Outcome.PERMANENT and "code 100" in str(err)


# -- SMS status callbacks --------------------------------------------------------------------------


class Receiver:
    """A small local HTTP server that collects Twilio status callbacks."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                params = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
                received.append(
                    {
                        "path": self.path,
                        "params": params,
                        "signature": self.headers.get("X-Twilio-Signature"),
                    }
                )
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/twilio/status?school=lhs"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def for_message(self, sid: str) -> list[dict[str, Any]]:
        return [c for c in self.received if c["params"]["MessageSid"] == sid]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.mark.parametrize(
    ("number", "statuses", "error_code"),
    [
        (PHONE, ["sent", "delivered"], None),
        ("+15005559001", ["sent", "undelivered"], "30003"),
        ("+15005559002", ["failed"], "30008"),
    ],
)
def test_status_callbacks_are_signed_like_twilio(
    sandbox: Sandbox,
    receiver: Receiver,
    number: str,
    statuses: list[str],
    error_code: str | None,
) -> None:
    sms = CHANNELS[2].adapter(sandbox, settings={"status_callback": receiver.url})
    receipt = sms.send("Route 12 is running 30 minutes late", to=number)
    assert wait_for(lambda: len(receiver.for_message(receipt.provider_id)) == len(statuses))

    callbacks = receiver.for_message(receipt.provider_id)
    assert [c["params"]["MessageStatus"] for c in callbacks] == statuses
    validator = RequestValidator(TWILIO_TOKEN)
    for callback in callbacks:
        params = callback["params"]
        assert callback["path"] == "/twilio/status?school=lhs"
        assert validator.validate(receiver.url, params, callback["signature"])
        assert not RequestValidator("another-token").validate(
            receiver.url, params, callback["signature"]
        )
        assert params["SmsStatus"] == params["MessageStatus"]
        assert params["To"] == number
        assert params["AccountSid"] == TWILIO_SID
        assert params["MessagingServiceSid"] == SERVICE_SID
        assert params["ApiVersion"] == "2010-04-01"
        assert params["From"].startswith("+")
        if params["MessageStatus"] in ("undelivered", "failed"):
            assert params["ErrorCode"] == error_code
        else:
            assert "ErrorCode" not in params
    final = sms.fetch(receipt.provider_id).raw
    assert final["status"] == statuses[-1]
    assert final["error_code"] == (int(error_code) if error_code else None)


# -- concurrency -----------------------------------------------------------------------------------


def test_16_threads_each_send_once(sandbox: Sandbox, channel: Channel) -> None:
    errors: list[BaseException] = []
    receipts: dict[int, Receipt] = {}
    start = threading.Barrier(16)

    def worker(n: int) -> None:
        try:
            adapter = channel.adapter(sandbox)  # one adapter (one SDK client) per thread
            start.wait()
            receipts[n] = adapter.send(f"Message {n} of 16", to=channel.to)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    posted = creates(sandbox, channel)
    assert len(posted) == 16
    assert sorted(r["resource_id"] for r in posted) == sorted(
        r.provider_id for r in receipts.values()
    )
    assert sorted(text_of(p) for p in live(sandbox, channel)) == sorted(
        f"Message {n} of 16" for n in range(16)
    )


# -- construction, registry, transport -------------------------------------------------------------


def test_registry_builds_each_channel() -> None:
    assert adapter_for("x") is XAdapter
    assert adapter_for("facebook") is FacebookAdapter
    assert adapter_for("sms") is SmsAdapter
    with pytest.raises(LookupError):
        adapter_for("carrier-pigeon")
    for channel in CHANNELS:
        assert isinstance(build(channel.account(None)), adapter_for(channel.name))


def test_account_repr_hides_credentials() -> None:
    for channel in CHANNELS:
        text = repr(channel.account("http://127.0.0.1:9"))
        assert all(secret not in text for secret in channel.credentials.values())


def test_missing_settings_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="consumer_secret"):
        build(CHANNELS[0].account(None, credentials={"consumer_secret": ""}))
    with pytest.raises(ValueError, match="page_id"):
        build(CHANNELS[1].account(None, settings={"page_id": ""}))
    with pytest.raises(ValueError, match="messaging_service_sid"):
        build(CHANNELS[2].account(None, settings={"messaging_service_sid": ""}))


@pytest.mark.parametrize(
    ("configured", "used"), [("v21.0", "v21.0"), ("19.0", "v19.0"), (None, "v21.0")]
)
def test_facebook_uses_current_graph_versions(
    sandbox: Sandbox, configured: str | None, used: str
) -> None:
    fb = CHANNELS[1].adapter(sandbox, settings={"graph_version": configured or ""})
    assert fb.graph_version == used
    fb.send("Board meeting moved")
    assert sandbox.requests("facebook")[0]["path"] == f"/{used}/{PAGE_ID}/feed"


def test_facebook_refuses_a_malformed_version() -> None:
    with pytest.raises(ValueError, match="graph_version"):
        build(CHANNELS[1].account(None, settings={"graph_version": "latest"}))
    graph = PageGraph("t", version="v22.0", timeout=1, session=requests.Session())
    assert graph.version == "v22.0"


def test_each_sdk_session_carries_the_transport(channel: Channel) -> None:
    real = channel.adapter(None, timeout_s=7)
    transport = real._transport
    assert isinstance(transport, ProviderTransport)
    assert transport.timeout == 7 and transport.sandbox_url is None
    sessions = {
        "x": lambda a: a._client.session,
        "facebook": lambda a: a._graph.session,
        "sms": lambda a: a._client.http_client.session,
    }
    session = sessions[channel.name](real)
    assert session.get_adapter("https://api.twilio.com/x") is transport
    assert transport.target("https://graph.facebook.com/v21.0/me") == (
        "https://graph.facebook.com/v21.0/me"
    )

    boxed = build(channel.account("http://127.0.0.1:9"))  # pointed at a sandbox
    assert boxed._transport.target("https://api.twitter.com/2/tweets?a=1") == (
        "http://127.0.0.1:9/2/tweets?a=1"
    )
    assert boxed._transport.target("https://api.dublin.ie1.twilio.com/2010-04-01/A") == (
        "http://127.0.0.1:9/2010-04-01/A"
    )
    with pytest.raises(SandboxRefused):
        sessions[channel.name](boxed).get("https://example.com/")


def test_the_transport_applies_its_timeout_when_the_sdk_passes_none(sandbox: Sandbox) -> None:
    """tweepy passes no timeout at all: the transport's default must still apply."""
    sandbox.set_faults([{"fault": "timeout_after_accept", "hold_ms": 3000}])
    x = CHANNELS[0].adapter(sandbox, timeout_s=SHORT)
    # Without the default the send would wait for the held 201 and succeed.
    assert fails(lambda: x.send("tweepy passes timeout=None")).outcome is Outcome.AMBIGUOUS


@pytest.mark.skipif(not hasattr(socket, "TCP_USER_TIMEOUT"), reason="TCP_USER_TIMEOUT is Linux's")
def test_a_provider_socket_gives_up_on_unacknowledged_data_after_the_timeout(
    sandbox: Sandbox,
) -> None:
    """A request the worker has given up on (its link went down) must not reach the provider
    when the link returns, after the sweep looked for it and sent it again."""
    adapter = CHANNELS[2].adapter(sandbox, timeout_s=2.5)
    adapter.send("Test of the alert system", to="+14155550100")
    pools = adapter._transport.poolmanager.pools
    # urllib3's pool container refuses plain iteration, hence keys().
    sockets = [conn.sock for key in pools.keys() for conn in pools[key].pool.queue if conn]  # noqa: SIM118
    assert sockets
    for sock in sockets:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 2500
