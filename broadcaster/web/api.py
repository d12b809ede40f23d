"""The JSON API (placeholder until it lands)."""

from flask import Blueprint

api = Blueprint("api", __name__, url_prefix="/api/v1")
