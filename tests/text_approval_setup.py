"""What the approval-by-text tests share (issue 14, item 5): a district whose SMS account texts
approvers, with three users who may approve (ana writes the messages), their verified phones,
and cheap argon2 for the codes (as conftest does for tokens)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from broadcaster.core import db, identity
from broadcaster.core.config import SAMPLE_CONFIG, SAMPLE_DISTRICT, DistrictConfig, load_district
from broadcaster.core.models import ApproverPhone, User, utcnow
from broadcaster.delivery import approver_phones

approver_phones._hasher = identity._hasher  # real argon2 at its cheapest cost (see conftest)

BEN = "+19515550150"
ANA = "+19515550151"
CARMEN = "+19515550152"
PHONES = {"ben": BEN, "ana": ANA, "carmen": CARMEN}


def approval_district(run, tmp_path: Path) -> DistrictConfig:
    """The sample district, its SMS account texting approvers; ana (author) and carmen
    (incident commander) may approve too, so that a wrong phone is a real approver's."""
    text = SAMPLE_CONFIG.read_text(encoding="utf-8")
    text = text.replace('roster = "roster.csv"', f'roster = "{SAMPLE_DISTRICT / "roster.csv"}"')
    text = text.replace(
        'sender = "short_code"\n', 'sender = "short_code"\nnotify_approvals = true\n', 1
    )
    for name, roles in (("ana", '"author"'), ("carmen", '"incident_commander"')):
        text = text.replace(
            f"[users.{name}]\nroles = [{roles}]\n",
            f'[users.{name}]\nroles = [{roles}, "approver"]\n',
        )
    config = tmp_path / "district.toml"
    config.write_text(text, encoding="utf-8")
    run.env["BROADCASTER_CONFIG"] = str(config)
    district = load_district(config)
    assert district.users["ana"].roles == ["author", "approver"]
    return district


def verify_phones(url: str, names: tuple[str, ...] = ("ben", "ana", "carmen")) -> None:
    """These users' phones, verified (as `users phone ... --code` leaves them)."""
    with db.session_scope(url) as session:
        for user in session.scalars(select(User).where(User.name.in_(names))):
            session.add(
                ApproverPhone(
                    user_id=user.id,
                    phone=PHONES[user.name],
                    verified_at=utcnow(),
                    registered_by=user.name,
                )
            )
