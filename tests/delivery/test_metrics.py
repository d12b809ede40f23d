"""Prometheus metrics: a real worker's counters and latencies after a delivery through the
sandbox, the web app's queue gauges before and after, and who may read the web app's /metrics."""

from __future__ import annotations

import socket

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import submit_and_approve
from tests.delivery_stack import import_contacts, redis_url

TOKEN = "m3trics-T0ken-for-prometheus-only"
CHANNELS = ("x", "facebook", "sms", "web")
QUEUES = ("urgent", "social", "sms", "web", "default")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def parse(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} from Prometheus's text format."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def scrape(url: str, token: str | None = TOKEN) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.get(f"{url}/metrics", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.text


def test_a_worker_exports_its_deliveries_and_provider_latency(
    stack, run, tokens, compose_closure, tmp_path
):
    phones = import_contacts(run, tmp_path, 30)
    stack.sandbox.set_faults([{"provider": "x", "fault": "status", "status": 503, "count": 1}])
    draft = compose_closure()
    submit_and_approve(run, tokens, draft)
    port = free_port()
    stack.start_worker("--metrics-port", str(port))
    view = stack.wait_done(draft["id"])
    assert view["state"] == "sent", view
    sent = {channel: view["deliveries"][channel]["sent"] for channel in CHANNELS}
    assert sent["sms"] == len(phones) and sent["x"] == 2  # English, and the Spanish reply
    assert sent["facebook"] == sent["web"] == 1

    url = f"http://127.0.0.1:{port}"

    def counted() -> dict[str, float | None]:
        samples = parse(scrape(url, token=None))  # a worker's port is private: no token
        return {
            channel: value(samples, "broadcaster_deliveries_total", channel=channel, outcome="sent")
            for channel in CHANNELS
        }

    # An outcome is counted just after its commit: the last one may trail the message's state.
    stack.wait_for(lambda: counted() == sent, timeout=30)
    body = scrape(url, token=None)
    samples = parse(body)
    for channel in CHANNELS:
        calls = value(
            samples, "broadcaster_provider_latency_seconds_count", channel=channel, operation="send"
        )
        assert calls is not None and calls >= sent[channel], (channel, calls)
    # The post refused once with a 503 was retried, and both calls were timed.
    assert value(samples, "broadcaster_deliveries_total", channel="x", outcome="retry") == 1
    latency = "broadcaster_provider_latency_seconds_count"
    # The post's two calls, and its Spanish reply's one.
    assert value(samples, latency, channel="x", operation="send") == 3
    assert value(samples, "broadcaster_deliveries_total", channel="sms", outcome="failed") is None
    # The worker also reads the shared state: everything was delivered.
    assert value(samples, "broadcaster_broker_up") == 1
    assert value(samples, "broadcaster_open_deliveries", status="queued") == 0
    assert value(samples, "broadcaster_oldest_queued_delivery_age_seconds") == 0
    assert not [phone for phone in phones if phone in body]


def test_the_web_app_shows_the_queue_and_its_oldest_delivery_until_a_worker_sends_it(
    stack, run, tokens, compose_closure, tmp_path, web_app
):
    phones = import_contacts(run, tmp_path, 30)
    run.env["BROADCASTER_METRICS_TOKEN"] = TOKEN
    url = web_app()
    before = parse(scrape(url))
    assert value(before, "broadcaster_oldest_queued_delivery_age_seconds") == 0
    assert all(value(before, "broadcaster_queue_depth", queue=q) == 0 for q in QUEUES)

    draft = compose_closure()
    submit_and_approve(run, tokens, draft)  # no worker yet: the tasks wait in Redis
    body = scrape(url)
    waiting = parse(body)
    assert value(waiting, "broadcaster_broker_up") == 1
    assert value(waiting, "broadcaster_database_up") == 1
    for queue in ("social", "sms", "web"):
        assert value(waiting, "broadcaster_queue_depth", queue=queue) > 0, queue
    # The three posts and the Spanish X reply (queued until its tweet is sent); the texts are
    # written after the approval by a worker (its task is what waits on the sms queue), and
    # counted once written.
    assert value(waiting, "broadcaster_open_deliveries", status="queued") == 4
    assert value(waiting, "broadcaster_oldest_queued_delivery_age_seconds") > 0
    assert not [phone for phone in phones if phone in body]

    stack.start_worker("--no-beat")
    assert stack.wait_done(draft["id"])["state"] == "sent"
    done = parse(scrape(url))
    assert all(value(done, "broadcaster_queue_depth", queue=q) == 0 for q in QUEUES)
    assert value(done, "broadcaster_open_deliveries", status="queued") == 0
    assert value(done, "broadcaster_open_deliveries", status="sending") == 0
    assert value(done, "broadcaster_oldest_queued_delivery_age_seconds") == 0
    # The web app has no per-process counters: under gunicorn they would differ per process.
    assert not [key for key in done if key[0].startswith("broadcaster_deliveries")]


def test_a_broker_that_is_down_is_reported_not_an_error_and_its_password_never_shown(run, web_app):
    run.env["BROADCASTER_METRICS_TOKEN"] = TOKEN
    run.env["BROADCASTER_BROKER_URL"] = f"redis://:hunter2-broker@127.0.0.1:{free_port()}/0"
    body = scrape(web_app())
    samples = parse(body)
    assert value(samples, "broadcaster_broker_up") == 0
    assert value(samples, "broadcaster_database_up") == 1
    assert "hunter2" not in body and "redis://" not in body


def test_only_the_configured_token_reads_the_web_apps_metrics(run, web_app):
    run.env["BROADCASTER_BROKER_URL"] = redis_url()
    run.env.pop("BROADCASTER_METRICS_TOKEN", None)
    unset = web_app()
    assert requests.get(f"{unset}/metrics", timeout=30).status_code == 404
    assert requests.get(f"{unset}/metrics", headers=bearer(""), timeout=30).status_code == 404
    run.env["BROADCASTER_METRICS_TOKEN"] = "   "  # blank is no token
    assert requests.get(f"{web_app()}/metrics", timeout=30).status_code == 404

    run.env["BROADCASTER_METRICS_TOKEN"] = TOKEN
    url = web_app()
    wrong = [
        {},
        bearer(""),
        bearer("wrong"),
        bearer(TOKEN.upper()),
        bearer(TOKEN[:-1]),
        bearer(TOKEN + "x"),
        {"Authorization": f"Bearer  {TOKEN}"},  # an extra space is part of the token
        bearer(TOKEN + "\u200b"),  # a zero-width space
        bearer(TOKEN.replace("o", "\u043e")),  # a Cyrillic o
        bearer("".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in TOKEN)),  # fullwidth
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
    ]
    for headers in wrong:
        response = requests.get(f"{url}/metrics", headers=headers, timeout=30)
        assert response.status_code == 401, headers
        assert "broadcaster_" not in response.text
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    in_query = requests.get(f"{url}/metrics", params={"token": TOKEN}, timeout=30)
    assert in_query.status_code == 401
    for scheme in ("Bearer", "bearer"):
        headers = {"Authorization": f"{scheme} {TOKEN}"}
        ok = requests.get(f"{url}/metrics", headers=headers, timeout=30)
        assert ok.status_code == 200
        assert ok.headers["Content-Type"].startswith("text/plain; version=")
        assert "broadcaster_queue_depth" in ok.text


def bearer(token: str) -> dict[str, bytes]:
    """The header as raw UTF-8 bytes, as an attacker's client may send it."""
    return {"Authorization": f"Bearer {token}".encode()}


def test_a_worker_refuses_a_metrics_port_it_cannot_use(run):
    run.env["BROADCASTER_BROKER_URL"] = redis_url()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("worker", "--metrics-port", str(port))
    assert result.exit_code == 2
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.stderr
    assert "--metrics-port" in result.stderr
    assert run("worker", "--metrics-port", "0").exit_code == 2
