"""The broadcaster's web application (Flask). For now: the Twilio web hooks."""

from __future__ import annotations

from flask import Flask

from broadcaster.config import Settings, load_district


def create_app(settings: Settings | None = None) -> Flask:
    from broadcaster.web.twilio_hooks import hooks

    settings = settings or Settings()
    app = Flask("broadcaster")
    app.config["BROADCASTER_SETTINGS"] = settings
    app.config["BROADCASTER_DISTRICT"] = load_district(settings.config_path)
    app.register_blueprint(hooks)
    return app
