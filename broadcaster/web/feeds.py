"""Alert feeds (placeholder until the public side lands)."""

from flask import Blueprint

feeds = Blueprint("feeds", __name__)
