"""Public alert pages (placeholder until the public side lands)."""

from flask import Blueprint

public = Blueprint("public", __name__)


@public.get("/")
def index() -> str:
    return "alerts"
