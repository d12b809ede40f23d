"""The long-running processes: worker, sandbox, web; and doctor and demo."""

from __future__ import annotations

import os
import sys
import time
import warnings

import click

from broadcaster.cli.app import App, json_option, pass_app, split_list
from broadcaster.cli.base import emit_json, example
from broadcaster.core import db, owner_only
from broadcaster.core.errors import BadInput
from broadcaster.delivery.celery_app import QUEUES, configure, run_worker
from broadcaster.operations import doctor


@click.command(epilog=example("broadcaster worker --concurrency 16 --metrics-port 9808"))
@click.option(
    "--queues",
    default=",".join(QUEUES),
    show_default=True,
    help="Comma-separated queues to consume.",
)
@click.option("--concurrency", default=16, show_default=True, help="Threads for sending.")
@click.option(
    "--beat/--no-beat",
    default=True,
    show_default=True,
    help="Also run the periodic sweep (one per deployment is enough; more is harmless).",
)
@click.option("--loglevel", default="info", show_default=True)
@click.option("--verbose/--quiet", default=False, help="Also print Celery's start-up banner.")
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="Serve Prometheus metrics on this port (no authentication: keep it on a private address).",
)
@click.option(
    "--metrics-host", default="127.0.0.1", show_default=True, help="The metrics port's address."
)
@pass_app
def worker(
    app: App,
    queues: str,
    concurrency: int,
    beat: bool,
    loglevel: str,
    verbose: bool,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Run a Celery worker with the settings delivery relies on."""
    for queue in split_list(queues) or []:
        if queue not in QUEUES:
            raise BadInput(f"unknown queue {queue!r} (queues: {', '.join(QUEUES)})")
    db.prepare(app.url, app.settings.is_embedded)
    # Before configure() starts any embedded broker.
    doctor.check_at_start(app.settings, lambda line: click.echo(f"warning: {line}", err=True))
    celery = configure(app.settings)
    celery.conf.worker_concurrency = concurrency  # also sizes the provider call threads (tasks.py)
    quiet_about_root()
    argv = [
        *([] if verbose else ["--quiet"]),  # Celery's banner
        "worker",
        "--pool",
        "threads",
        "--concurrency",
        str(concurrency),
        "--queues",
        queues,
        "--hostname",
        f"broadcaster-{os.getpid()}@%h",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        loglevel,
    ]
    if beat:
        # Celery creates the beat's schedule file with the umask's mode: owner-only, like the
        # rest of the home.
        os.umask(0o077)
        owner_only.ensure_folder(app.settings.home)
        argv += ["--beat", "--schedule", str(app.settings.home / "celerybeat-schedule")]
    if metrics_port:
        from broadcaster.delivery.metrics import serve_worker_metrics

        serve_worker_metrics(app.settings, celery.conf.broker_url, metrics_host, metrics_port)
    # Non-zero when the worker stopped on a fatal error, so systemd or compose restart it.
    sys.exit(run_worker(argv))


def quiet_about_root() -> None:
    """Celery's warning about running as root, said once in our words instead of its ten lines
    (it is not silenced: running as root is still not recommended)."""
    if os.geteuid() != 0:
        return
    from celery.exceptions import SecurityWarning

    warnings.filterwarnings("ignore", category=SecurityWarning)
    click.echo(
        "warning: this worker runs as root, which is not recommended: run it as a dedicated "
        "user, as deploy/ does (the `broadcaster` user in deploy/systemd and deploy/Dockerfile)",
        err=True,
    )


@click.command(epilog=example("broadcaster sandbox --port 8025"))
@click.option("--port", default=8025, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
def sandbox(port: int, host: str) -> None:
    """Run the provider sandbox (X, Facebook, Twilio) in the foreground."""
    from provider_sandbox import Sandbox

    with Sandbox(host=host, port=port) as running:
        click.echo(
            f"provider sandbox at {running.url}; export BROADCASTER_SANDBOX_URL={running.url}"
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


@click.command(epilog=example("broadcaster web --port 8000"))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@pass_app
def web(app: App, host: str, port: int) -> None:
    """Serve the web application: public alerts and feeds, the staff console, the API and the
    Twilio web hooks. Use gunicorn in production (deploy/)."""
    from broadcaster.web import create_app

    db.prepare(app.url, app.settings.is_embedded)
    create_app(app.settings).run(host=host, port=port)


@click.command("doctor", epilog=example("broadcaster doctor --json"))
@json_option
@pass_app
def doctor_cmd(app: App, as_json: bool) -> None:
    """Check this deployment: one line per check; exit 1 when any finds a problem."""
    checks = doctor.run(app.settings)
    found = doctor.report(checks)
    if as_json:
        emit_json(found)
    else:
        for check in checks:
            click.echo(f"{'ok' if check.ok else 'PROBLEM':8} {check.name}: {check.detail}")
    if not found["ok"]:
        sys.exit(1)


@click.command(epilog=example("broadcaster demo"))
@click.option("--verbose", is_flag=True, help="Also print the worker's Celery banner.")
def demo(verbose: bool) -> None:
    """The whole flow on this machine: embedded Redis, SQLite, the sandbox and one worker."""
    from broadcaster.operations.demo import run_demo

    sys.exit(run_demo(verbose))


COMMANDS = [worker, sandbox, web, doctor_cmd, demo]
