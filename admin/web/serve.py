"""What `keap-orders serve` runs: the app built from this process's settings (each uvicorn worker builds its own)."""
from __future__ import annotations

from fastapi import FastAPI

from admin.web.app import create_app
from worker.settings import Settings


def app() -> FastAPI:
    return create_app(Settings())
