"""The staff console (placeholder until it lands)."""

from flask import Blueprint

console = Blueprint("console", __name__, url_prefix="/console")
