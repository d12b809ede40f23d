"""The single-machine path: the embedded Redis keeps queued work across its own restart, and
`broadcaster demo` runs from nothing."""

from __future__ import annotations

import os
import subprocess
import sys

from broadcaster import embedded_redis
from tests.delivery_stack import FAST_SWEEP


def test_work_queued_on_the_embedded_redis_survives_its_restart(
    run, tokens, compose_closure, tmp_path
):
    from provider_sandbox import Sandbox

    home = tmp_path / "home"
    with Sandbox(port=0) as sandbox:
        run.env.update(FAST_SWEEP)
        run.env["BROADCASTER_SANDBOX_URL"] = sandbox.url
        draft = compose_closure("--channels", "x,facebook,web", audience=None)
        run("submit", str(draft["id"]), "--as", "ana", token=tokens["ana"])
        assert run("approve", str(draft["id"]), "--as", "ben", token=tokens["ben"]).exit_code == 0
        assert embedded_redis.is_running(home)  # the approving process started it
        embedded_redis.stop(home)  # as if the machine restarted before any worker ran
        assert not embedded_redis.is_running(home)
        worker = subprocess.Popen(
            [sys.executable, "-m", "broadcaster", "worker", "--no-beat", "--loglevel", "warning"],
            env={**os.environ, **run.env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            view = run.json("status", str(draft["id"]), "--follow", "--timeout", "60")
        finally:
            worker.terminate()
            worker.wait(timeout=30)
        assert view["state"] == "sent"  # delivered from the queue restored from disk
        assert len(sandbox.posts("x")) == 1 and len(sandbox.posts("facebook")) == 1


def test_the_demo_runs_on_a_fresh_install(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROADCASTER_")}
    result = subprocess.run(
        [sys.executable, "-m", "broadcaster", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "records verify: intact" in result.stdout
    assert "is sent" in result.stdout
