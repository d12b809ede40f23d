"""Which channel accounts a message goes to, the blocking findings when it has nowhere to go, and
the voice renditions no voice can say.
(The rule that a rehearsal never leaves the test allowlist is rehearsals.py, which the worker
checks again at the last moment.)"""

from __future__ import annotations

from broadcaster.authoring.checks import BLOCK, WARN, Finding
from broadcaster.authoring.render import Rendition
from broadcaster.core.config import DistrictConfig
from broadcaster.core.languages import language
from broadcaster.core.states import REHEARSAL_KINDS
from broadcaster.core.wording import a_or_an
from broadcaster.delivery.accounts import SANDBOX_ONLY, uses_sandbox
from channel_adapters.voice import say_language


def resolve_targets(
    district: DistrictConfig, channels: list[str], kind: str
) -> tuple[list[tuple[str, str]], list[Finding]]:
    """`(channel, account)` pairs for the message, and a blocking finding for every channel that
    has nowhere allowed to go."""
    allowlist = set(district.test_allowlist.accounts)
    targets: list[tuple[str, str]] = []
    findings: list[Finding] = []
    for channel in channels:
        accounts = [a.name for a in district.accounts_for(channel)]
        if kind in REHEARSAL_KINDS:
            chosen = [a for a in accounts if a in allowlist]
            missing = f"no {channel} account on the test allowlist for {a_or_an(kind)} message"
        else:
            chosen = [a for a in accounts if a not in allowlist]
            missing = f"the district has no {channel} account configured"
        if not chosen:
            findings.append(Finding("no_target", BLOCK, channel, None, missing))
        targets.extend((channel, name) for name in chosen)
    return targets, findings


def unserved(
    district: DistrictConfig, targets: list[tuple[str, str]], kind: str, sandbox_url: str | None
) -> list[Finding]:
    """A blocking finding for every target that only the sandbox serves when this deployment
    runs none: such a delivery could only fail. A district file that trusts the sandbox is a
    development, demo or test one, where the sandbox is started beside the workers."""
    if sandbox_url or district.sandbox.trusted:
        return []
    accounts = {a.name: a for a in district.accounts}
    return [
        Finding(
            "no_sandbox",
            BLOCK,
            channel,
            None,
            f"{name} is served by the provider sandbox ("
            + (
                f"{a_or_an(kind)} message never leaves it"
                if kind == SANDBOX_ONLY
                else "the account has no credentials_env in the district file"
            )
            + "), which this deployment does not run (BROADCASTER_SANDBOX_URL is not set)",
        )
        for channel, name in targets
        if uses_sandbox(accounts[name], kind)
    ]


def unspoken(
    district: DistrictConfig, targets: list[tuple[str, str]], renditions: list[Rendition]
) -> tuple[list[Rendition], list[Finding]]:
    """The renditions without the voice ones that the message's voice accounts cannot say, and a
    warning for each: no Twilio voice speaks Somali, so a Somali voice rendition is left out and
    the families of that language are called in English, the language a call falls back to
    (their texts, e-mails and the web page stay in their language)."""
    accounts = {a.name: a for a in district.accounts}
    voices = [accounts[name] for channel, name in targets if channel == "voice"]
    kept: list[Rendition] = []
    findings: list[Finding] = []
    for rendition in renditions:
        if (
            rendition.channel == "voice"
            and voices
            and not all(say_language(a.settings, rendition.locale) for a in voices)
        ):
            known = language(rendition.locale)
            name = known.english if known else rendition.locale
            findings.append(
                Finding(
                    "no_voice",
                    WARN,
                    "voice",
                    rendition.locale,
                    f"no text-to-speech voice speaks {name}: "
                    f"families whose language is {rendition.locale} are called in English "
                    "(their texts, e-mails and the web page stay in their language)",
                )
            )
            continue
        kept.append(rendition)
    return kept, findings
