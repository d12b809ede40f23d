"""What the X thread and preview-routing tests share (issue 14, item 2): the sample district
publishing English, Spanish and Vietnamese, with a small template of its own whose Spanish files
a reviewer signed off and whose Vietnamese ones are drafts, and the provider sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import select

from broadcaster.core import db
from broadcaster.core.config import SAMPLE_CONFIG, SAMPLE_DISTRICT, DistrictConfig, load_district
from broadcaster.core.models import Delivery
from broadcaster.delivery.sending import Worker, send_batch
from tests.conftest import Cli
from tests.delivery_stack import redis_url

TEMPLATE = "closed_today"
WHAT = (
    "--var", "what=The district pool",
    "--var", "what.es=La piscina del distrito",
    "--var", "what.vi=Hồ bơi của học khu",
)  # fmt: skip
TEXTS = {
    "en": "Riverside USD: {{ what }} is closed today.",
    "es": "Riverside USD: {{ what }} está cerrado hoy.",
    "vi": "Riverside USD: {{ what }} đóng cửa hôm nay.",
}
META = """title = "Closed today"
category = "closure"
channels = ["x", "facebook", "sms", "web"]

[cap]
event = "Facility Closure"
category = "Infra"
severity = "Minor"
urgency = "Expected"

[[variables]]
name = "what"
type = "text"
max_length = 40

[reviewed]
"x.es.j2" = true
"sms.es.j2" = true
"x.vi.j2" = false
"sms.vi.j2" = false
"""


def thread_district(
    run: Cli, tmp_path: Path, *, es_account: bool = False, threads: bool = True
) -> DistrictConfig:
    """The sample district in en, es and vi with the `closed_today` template; with an X account
    of its own for Spanish, or with the district's X account not threading."""
    folder = tmp_path / "templates" / TEMPLATE
    folder.mkdir(parents=True)
    (folder / "meta.toml").write_text(META, encoding="utf-8")
    for locale, text in TEXTS.items():
        for channel in ("x", "sms"):
            (folder / f"{channel}.{locale}.j2").write_text(text, encoding="utf-8")
    (folder / "facebook.en.j2").write_text(TEXTS["en"], encoding="utf-8")
    (folder / "web.en.j2").write_text("<p>{{ what }} is closed today.</p>", encoding="utf-8")
    text = SAMPLE_CONFIG.read_text(encoding="utf-8")
    text = text.replace('roster = "roster.csv"', f'roster = "{SAMPLE_DISTRICT / "roster.csv"}"')
    text = text.replace('locales = ["en", "es"]', 'locales = ["en", "es", "vi"]', 1)
    if not threads:
        text = text.replace(
            'handle = "@RiversideUSD"\n',
            'handle = "@RiversideUSD"\nthread_other_languages = false\n',
        )
    text = f'templates_dirs = ["{tmp_path / "templates"}"]\n' + text
    if es_account:
        text += (
            '\n[[accounts]]\nname = "district-x-es"\nchannel = "x"\n'
            'handle = "@RiversideUSD_es"\nlocale = "es"\n'
        )
    config = tmp_path / "district.toml"
    config.write_text(text, encoding="utf-8")
    run.env["BROADCASTER_CONFIG"] = str(config)
    return load_district(config)


@contextmanager
def sandboxed(run: Cli) -> Iterator[object]:
    """The provider sandbox on loopback and the test's Redis as the broker (its tasks are
    never consumed: the tests send in-process, as a worker does)."""
    from provider_sandbox import Sandbox

    with Sandbox(port=0) as sandbox:
        run.env["BROADCASTER_BROKER_URL"] = redis_url()
        run.env["BROADCASTER_SANDBOX_URL"] = sandbox.url
        yield sandbox


def approved(run: Cli, tokens: dict[str, str], *extra: str) -> int:
    """ana composes `closed_today` (X only unless `extra` says), ben approves: dispatched."""
    draft = run.json(
        "compose", TEMPLATE, "--as", "ana", *WHAT, "--channels", "x", *extra, token=tokens["ana"]
    )
    mid = str(draft["id"])
    assert run("submit", mid, "--as", "ana", token=tokens["ana"]).exit_code == 0
    result = run("approve", mid, "--as", "ben", "--ack-warnings", token=tokens["ben"])
    assert result.exit_code == 0, result.output
    return int(mid)


def x_rows(url: str, message_id: int) -> list[Delivery]:
    with db.session_scope(url) as session:
        rows = session.scalars(
            select(Delivery)
            .where(Delivery.message_id == message_id, Delivery.channel == "x")
            .order_by(Delivery.id)
        ).all()
        session.expunge_all()
        return list(rows)


def send_all(worker: Worker, message_id: int, rounds: int = 5) -> None:
    """Send the message's deliveries in-process, as workers would, until none is claimable:
    each round is what the broker would have been handed (a reply once its tweet is sent)."""
    url = worker.settings.effective_database_url
    for _ in range(rounds):
        send_batch(worker, [d.id for d in x_rows(url, message_id) if d.status == "queued"])


def load(run: Cli) -> DistrictConfig:
    return load_district(Path(run.env["BROADCASTER_CONFIG"]))
