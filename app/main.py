"""`uvicorn app.main:app --host 0.0.0.0 --port 8080` (the guide's command) serves ragchat.

The app is built on first access of `app`, not at import, so importing this module does no work and
reads no environment; settings come from the environment when uvicorn asks for `app`.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "app":
        from ragchat.api.app import app_from_environment

        return app_from_environment()
    raise AttributeError(name)
