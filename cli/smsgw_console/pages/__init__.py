"""One blueprint per page family; each module's `blueprint` is registered here."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    from smsgw_console.pages import batches, compose, health, messages, sims, timeline

    for module in (messages, sims, timeline, compose, batches, health):
        app.register_blueprint(module.blueprint)
