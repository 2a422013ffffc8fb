"""Conveyor in the browser: server-rendered pages (Jinja2) beside the API."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles


def add_pages(app: FastAPI) -> None:
    """The pages and their one stylesheet, on an app `conveyor.api.create_app` made."""
    from conveyor.web import flows, insight, lists, pages, products

    for module in (pages, flows, products, insight, lists):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
