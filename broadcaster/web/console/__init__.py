"""The staff console: sign-in (password or district single sign-on), compose with a live
preview, the approval queue, message pages with live delivery progress, and the contacts import.

Every action goes through the same service functions and permission checks as the command line;
what a page shows is only a convenience.
"""

from flask import Blueprint

console = Blueprint("console", __name__, url_prefix="/console")

# The view modules attach their routes to `console` when imported.
from broadcaster.web.console import (  # noqa: E402, F401
    actions,
    admin,
    auth,
    compose,
    corrections,
    inbox,
    incident,
    oidc,
    opt_outs,
    pages,
    records,
)
