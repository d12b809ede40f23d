"""Which channel accounts a message goes to, and the rule that a test never leaves the test list."""

from __future__ import annotations

from broadcaster.checks import BLOCK, Finding
from broadcaster.config import DistrictConfig
from broadcaster.errors import Refused

REHEARSAL_KINDS = ("test", "exercise")


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


def ensure_allowed(district: DistrictConfig, kind: str, account: str) -> None:
    """The last guard before anything is sent: a rehearsal goes only to allowlisted accounts."""
    if kind in REHEARSAL_KINDS and account not in district.test_allowlist.accounts:
        raise Refused(f"a {kind} message may not go to {account}: it is not on the test allowlist")


def ensure_allowed_phone(district: DistrictConfig, kind: str, phone_e164: str) -> None:
    if kind in REHEARSAL_KINDS and phone_e164 not in district.test_phones:
        raise Refused(f"a {kind} message may not be texted to a number off the test allowlist")
