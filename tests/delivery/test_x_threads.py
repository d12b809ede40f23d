"""X threads (issue 14, item 2): a message's other languages follow its X post as replies, each
tweet its own delivery, sent in-process through the real tweepy client against the provider
sandbox, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select

from broadcaster.core import db
from broadcaster.core.models import Delivery, LedgerEntry
from broadcaster.delivery.jobs import claim
from broadcaster.delivery.sending import Worker, send_batch
from tests.threads_setup import approved, load, sandboxed, send_all, thread_district, x_rows


def tweets_of(sandbox) -> list[dict]:
    return sandbox.posts("x")


def test_one_x_account_posts_english_and_threads_spanish_and_vietnamese(run, tokens, tmp_path):
    thread_district(run, tmp_path)
    url = run.env["BROADCASTER_DATABASE_URL"]
    with sandboxed(run) as sandbox:
        mid = approved(run, tokens)
        root, es, vi = x_rows(url, mid)
        assert [(d.locale, d.recipient) for d in (root, es, vi)] == [
            ("en", "district-x"),
            ("es", "district-x#es"),
            ("vi", "district-x#vi"),
        ]
        assert (es.thread_parent, vi.thread_parent) == (root.id, es.id)
        with db.session_scope(url) as session:  # a reply is not claimable before its tweet
            assert claim(session, [es.id, vi.id], lease_s=60) == []

        worker = Worker(settings=run.settings(), district=load(run))
        send_batch(worker, [root.id, es.id, vi.id])
        assert [t["text"] for t in tweets_of(sandbox)] == [
            "Riverside USD: The district pool is closed today."
        ]
        _, es, vi = x_rows(url, mid)
        assert es.refers_to == tweets_of(sandbox)[0]["id"] and vi.refers_to is None
        send_all(worker, mid)

        first, second, third = tweets_of(sandbox)
        assert first["in_reply_to_tweet_id"] is None
        assert second["in_reply_to_tweet_id"] == first["id"] and "cerrado" in second["text"]
        assert third["in_reply_to_tweet_id"] == second["id"] and "đóng cửa" in third["text"]
        assert len({t["author_id"] for t in (first, second, third)}) == 1  # one account
    status = run.json("status", str(mid))
    assert status["state"] == "sent"
    assert status["deliveries"]["x"]["sent"] == 3  # each tweet counted


def test_an_x_account_of_a_language_posts_it_and_the_rest_threads(run, tokens, tmp_path):
    thread_district(run, tmp_path, es_account=True)
    url = run.env["BROADCASTER_DATABASE_URL"]
    with sandboxed(run) as sandbox:
        mid = approved(run, tokens)
        rows = {d.locale: d for d in x_rows(url, mid)}
        assert {loc: d.account for loc, d in rows.items()} == {
            "en": "district-x",
            "es": "district-x-es",
            "vi": "district-x",
        }
        assert rows["es"].thread_parent is None and rows["vi"].thread_parent == rows["en"].id
        send_all(Worker(settings=run.settings(), district=load(run)), mid)
        english, spanish, vietnamese = (
            next(t for t in tweets_of(sandbox) if word in t["text"])
            for word in ("closed", "cerrado", "đóng cửa")
        )
        assert spanish["in_reply_to_tweet_id"] is None
        assert spanish["author_id"] != english["author_id"]
        assert vietnamese["in_reply_to_tweet_id"] == english["id"]
    assert run.json("status", str(mid))["state"] == "sent"


def test_a_reply_whose_tweet_failed_fails_with_the_reason_and_retry_sends_the_thread(
    run, tokens, tmp_path
):
    thread_district(run, tmp_path)
    url = run.env["BROADCASTER_DATABASE_URL"]
    with sandboxed(run) as sandbox:
        sandbox.set_faults(
            [{"provider": "x", "method": "POST", "fault": "status", "status": 403, "count": 1}]
        )
        mid = approved(run, tokens)
        worker = Worker(settings=run.settings(), district=load(run))
        send_all(worker, mid)
        root, es, vi = x_rows(url, mid)
        assert (root.status, es.status, vi.status) == ("failed", "failed", "failed")
        assert es.error == f"not sent: the tweet it replies to (delivery {root.id}) was failed"
        assert vi.error == f"not sent: the tweet it replies to (delivery {es.id}) was failed"
        assert es.attempts == vi.attempts == 0  # never sent to X
        assert tweets_of(sandbox) == []
        assert run.json("status", str(mid))["state"] == "failed"  # nothing left hanging

        assert run("retry", str(mid), "--as", "ben", token=tokens["ben"]).exit_code == 0
        send_all(worker, mid)
        first, second, third = tweets_of(sandbox)
        assert second["in_reply_to_tweet_id"] == first["id"]
        assert third["in_reply_to_tweet_id"] == second["id"]
    assert run.json("status", str(mid))["state"] == "sent"
    with db.session_scope(url) as session:
        failed = session.scalars(
            select(LedgerEntry).where(LedgerEntry.event == "delivery.failed")
        ).all()
    assert len(failed) == 3  # the root's, and each reply's with its reason
    assert run("records", "verify").exit_code == 0


def test_a_retraction_deletes_every_tweet_of_the_thread(run, tokens, tmp_path):
    thread_district(run, tmp_path)
    url = run.env["BROADCASTER_DATABASE_URL"]
    with sandboxed(run) as sandbox:
        mid = approved(run, tokens)
        worker = Worker(settings=run.settings(), district=load(run))
        send_all(worker, mid)
        assert len(tweets_of(sandbox)) == 3
        result = run(
            "retract", str(mid), "--as", "ben", "--reason", "wrong day", token=tokens["ben"]
        )
        assert result.exit_code == 0, result.output
        with db.session_scope(url) as session:
            deletions = session.execute(
                select(Delivery.id, Delivery.recipient, Delivery.refers_to).where(
                    Delivery.action == "delete"
                )
            ).all()
        assert sorted(d.refers_to for d in deletions) == sorted(t["id"] for t in tweets_of(sandbox))
        send_batch(worker, [d.id for d in deletions])
        assert [t["deleted"] for t in tweets_of(sandbox)] == [True, True, True]
    assert run.json("status", str(mid))["state"] == "retracted"
