"""The command line starts fast: the root command imports no verb module, so `--version` and
`--help` load neither Celery, SQLAlchemy, Alembic, the SDKs nor argon2, and the template verbs
load no more than the settings and the library need (benchmarks/cli_startup.py times it; no
timing is asserted here)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import click

from broadcaster.cli.main import VERBS, cli

HEAVY = ("celery", "kombu", "sqlalchemy", "alembic", "tweepy", "twilio", "argon2", "jinja2")


def loaded_after(code: str) -> set[str]:
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_the_root_command_imports_no_service_or_sdk():
    heavy = {m.split(".")[0] for m in loaded_after("import broadcaster.cli.main")} & set(HEAVY)
    assert heavy == set()
    help_run = "from broadcaster.cli.main import cli\ncli.main(['--help'], standalone_mode=False)"
    assert {m.split(".")[0] for m in loaded_after(help_run)} & set(HEAVY) == set()
    # The check itself can fail: a verb's module does import them.
    assert "sqlalchemy" in loaded_after("import broadcaster.cli.messages")


def test_the_template_verbs_import_no_database_queue_or_sdk(tmp_path):
    # The library is files and the district file: listing or showing it needs no ORM, no Celery.
    for verb in (["templates", "list"], ["templates", "show", "lockdown"]):
        run = (
            f"import os\nos.environ['BROADCASTER_HOME'] = {str(tmp_path)!r}\n"
            "from broadcaster.cli.main import cli\n"
            f"cli.main({verb!r}, standalone_mode=False)"
        )
        loaded = loaded_after(run)
        assert {m.split(".")[0] for m in loaded} & set(HEAVY) == set(), verb
        assert "broadcaster.authoring.catalog" in loaded, verb  # it did read the library


def test_the_root_help_is_each_verbs_own():
    ctx = click.Context(cli)
    for name, (module, short_help) in VERBS.items():
        command = cli.get_command(ctx, name)
        assert command is not None and command.callback is not None, name
        assert command.callback.__module__ == f"broadcaster.cli.{module}", name
        assert command.get_short_help_str(limit=10_000) == short_help, name
    modules = {importlib.import_module(f"broadcaster.cli.{m}") for m, _ in VERBS.values()}
    assert {c.name for m in modules for c in m.COMMANDS} == set(VERBS)  # none left out
