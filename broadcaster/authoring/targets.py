"""Which channel accounts a message goes to, and the blocking findings when it has nowhere to go.
(The rule that a rehearsal never leaves the test allowlist is rehearsals.py, which the worker
checks again at the last moment.)"""

from __future__ import annotations

from broadcaster.authoring.checks import BLOCK, Finding
from broadcaster.core.config import DistrictConfig
from broadcaster.core.states import REHEARSAL_KINDS
from broadcaster.delivery.accounts import SANDBOX_ONLY, uses_sandbox


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
            missing = f"no {channel} account on the test allowlist for a {kind} message"
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
                f"a {kind} message never leaves it"
                if kind == SANDBOX_ONLY
                else "no credentials_env"
            )
            + "), which this deployment does not run (BROADCASTER_SANDBOX_URL is not set)",
        )
        for channel, name in targets
        if uses_sandbox(accounts[name], kind)
    ]
