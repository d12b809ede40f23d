"""Who may do what: the one place where roles are checked, for the CLI, the console and the API."""

from __future__ import annotations

from broadcaster.core.config import DistrictConfig
from broadcaster.core.errors import Refused
from broadcaster.core.models import User

# action -> roles that may perform it
ACTION_ROLES: dict[str, frozenset[str]] = {
    "compose": frozenset({"author", "incident_commander"}),
    "submit": frozenset({"author", "incident_commander"}),
    "approve": frozenset({"approver"}),
    "reject": frozenset({"approver"}),
    "approve_pre_approved": frozenset({"incident_commander"}),
    "cancel": frozenset({"author", "approver", "incident_commander"}),
    "manage_users": frozenset({"admin"}),
    "import_contacts": frozenset({"admin"}),
    # A parent who calls the office: an admin opts their number out (or back in), with a reason.
    "change_opt_outs": frozenset({"admin"}),
    "retry": frozenset({"approver", "incident_commander"}),
    "retract": frozenset({"approver", "incident_commander"}),
    # Records: destruction and legal holds are the records officer's alone; exports may also be
    # made by an admin, but only a records officer may leave recipients' phone numbers, or the
    # student data the FERPA checks found, in one.
    "manage_records": frozenset({"records_officer"}),
    "export_records": frozenset({"records_officer", "admin"}),
    "include_recipients": frozenset({"records_officer"}),
    "include_student_data": frozenset({"records_officer"}),
    # Families' replies (records/inbox.py) may say anything about a child: read by the staff who
    # answer for the district and the records officer, not by authors or admins; their numbers
    # shown unmasked only to whoever may include recipients in an export.
    "read_inbox": frozenset({"approver", "incident_commander", "records_officer"}),
}


# How a refusal names an action, where its key does not read as words ("approve pre approved").
ACTION_WORDS = {
    "approve_pre_approved": "send a pre-approved template at once",
    "change_opt_outs": "opt a family out of texts or back in",
    "manage_records": "manage records (holds and purges)",
    "include_recipients": "include recipients' phone numbers in an export",
    "include_student_data": "include student data in an export",
    "read_inbox": "read families' replies",
}


def action_words(action: str) -> str:
    """An action as a refusal names it: "send a pre-approved template at once", "approve"."""
    return ACTION_WORDS.get(action) or action.replace("_", " ")


def effective_roles(user: User, district: DistrictConfig) -> list[str]:
    """The district file is authoritative for the users it lists; others keep their stored roles."""
    listed = district.users.get(user.name)
    return list(listed.roles) if listed else list(user.roles)


def require(user: User, action: str, district: DistrictConfig) -> None:
    words = action_words(action)
    if user.disabled_at is not None:  # each way in refuses them first; this holds for every action
        raise Refused(f"{user.name} is disabled and may not {words}")
    allowed = ACTION_ROLES[action]
    roles = effective_roles(user, district)
    if not allowed & set(roles):
        have = ", ".join(roles) or "no role"
        need = " or ".join(sorted(allowed))
        raise Refused(f"{user.name} ({have}) may not {words}: that takes the {need} role")


def may(user: User, action: str, district: DistrictConfig) -> bool:
    """Whether `require` would let the user do it."""
    try:
        require(user, action, district)
    except Refused:
        return False
    return True
