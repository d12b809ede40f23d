"""The staff adapter (channel_adapters/apprise_staff.py): the real Apprise library posting through
its generic json:// plugin to the sandbox's staff chat over loopback, as a district's account
(URLs as credentials) and as a sandbox-served one; masking, outcomes and the labels."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from channel_adapters import AccountConfig, DeliveryError, Outcome, Receipt, build
from channel_adapters.apprise_staff import masked, split_title
from provider_sandbox import Sandbox

TOKEN = "hook-T0k3n-91c2"  # noqa: S105 (made up)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def root_log() -> Iterator[list[logging.LogRecord]]:
    """Every record the root logger's handlers get, at DEBUG (as a worker's log would at its
    most verbose). pytest's own capture handlers sit on non-propagating loggers too, so they
    cannot tell what an application's handlers see."""
    root = logging.getLogger()
    keep, level = _Keep(), root.level
    root.addHandler(keep)
    root.setLevel(logging.DEBUG)
    try:
        yield keep.records
    finally:
        root.removeHandler(keep)
        root.setLevel(level)


def district_account(sandbox: Sandbox, **extra: str) -> AccountConfig:
    host = sandbox.url.split("://", 1)[1]
    urls = {"chat": f"json://{host}/_staff/room-{TOKEN}", **extra}
    return AccountConfig(name="staff-chat", channel="apprise", credentials=urls, timeout_s=2)


def test_a_post_reaches_its_urls_room_with_the_title_line(sandbox):
    adapter = build(district_account(sandbox))
    receipt = adapter.send("Schools closed\n\nAll schools are closed today.\nNo buses.", to="chat")
    assert receipt.provider_id.startswith("apprise-")
    assert receipt.raw["label"] == "chat" and receipt.raw["service"] == "json://•••"
    assert TOKEN not in json.dumps(receipt.raw)
    [post] = sandbox.posts("staff")
    assert post["room"] == f"room-{TOKEN}"
    assert (post["title"], post["message"]) == (
        "Schools closed",
        "All schools are closed today.\nNo buses.",
    )


def test_a_sandbox_served_account_posts_each_label_to_its_own_room(sandbox):
    account = AccountConfig(name="staff-chat", channel="apprise", sandbox_url=sandbox.url)
    adapter = build(account)
    adapter.send("Title\n\nBody", to="principals")
    adapter.send("Only a body", to="transport")
    posts = sandbox.posts("staff")
    assert [(p["room"], p["title"], p["message"]) for p in posts] == [
        ("staff-chat/principals", "Title", "Body"),
        ("staff-chat/transport", "", "Only a body"),
    ]


@pytest.mark.parametrize(
    "rule",
    [
        {"fault": "status", "status": 503},
        {"fault": "status", "status": 400},  # Apprise says only "not sent": retried all the same
        {"fault": "rate_limit", "retry_after": 3},
        {"fault": "drop"},
    ],
)
def test_not_sent_is_retryable_and_masked(sandbox, rule, root_log):
    sandbox.set_faults([{"provider": "staff", "count": 1, **rule}])
    adapter = build(district_account(sandbox))
    with pytest.raises(DeliveryError) as caught:
        adapter.send("Title\n\nBody", to="chat")
    error = caught.value
    assert error.outcome is Outcome.RETRYABLE
    assert error.detail.startswith("apprise: chat: json://••• not sent (failure)")
    text = error.detail + json.dumps(error.raw)
    assert TOKEN not in text and sandbox.url.split("://")[1] not in text
    # What reaches the application's handlers (the root logger's, at DEBUG): no line of
    # Apprise's (which quote the URL) and urllib3's request lines with the URL's parts masked.
    assert root_log, "urllib3's lines reach the root logger"
    assert not [r for r in root_log if r.name.startswith("apprise")]
    assert all(TOKEN not in r.getMessage() for r in root_log)
    adapter.send("Title\n\nBody", to="chat")  # the next try goes through
    assert len(sandbox.posts("staff")) == 1


def test_a_url_apprise_cannot_read_and_an_unknown_label_are_permanent(sandbox):
    adapter = build(district_account(sandbox, broken=f"nosuchservice://{TOKEN}/x"))
    with pytest.raises(DeliveryError) as caught:
        adapter.send("x", to="broken")
    assert caught.value.outcome is Outcome.PERMANENT
    assert caught.value.detail == (
        "apprise: broken: nosuchservice://••• is not a URL Apprise can send to"
    )
    for label in ("missing", "Not A Label"):
        with pytest.raises(DeliveryError) as caught:
            adapter.send("x", to=label)
        assert caught.value.outcome is Outcome.PERMANENT
    assert sandbox.posts("staff") == []


def test_nothing_to_look_up_and_nothing_to_take_back(sandbox):
    adapter = build(district_account(sandbox))
    assert adapter.lookup("x", to="chat", since=datetime.now(UTC)) is None
    with pytest.raises(DeliveryError) as caught:
        adapter.retract(Receipt("apprise-1"))
    assert caught.value.outcome is Outcome.PERMANENT


def test_the_credentials_stay_out_of_the_repr(sandbox):
    account = district_account(sandbox)
    assert TOKEN not in repr(account) and TOKEN not in repr(build(account).__dict__.keys())


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("slack://TokenA/TokenB/TokenC/#general", "slack://•••"),
        ("msteams://a/b/c/", "msteams://•••"),
        ("not a url", "•••"),
    ],
)
def test_masked(url, shown):
    assert masked(url) == shown


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Title\n\nBody\nmore", ("Title", "Body\nmore")),
        ("Title\r\n\r\nBody", ("Title", "Body")),
        ("One line", ("", "One line")),
        ("Two\nlines\n\nthen a body", ("", "Two\nlines\n\nthen a body")),
    ],
)
def test_split_title(text, expected):
    assert split_title(text) == expected
