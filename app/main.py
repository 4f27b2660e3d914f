"""`uvicorn app.main:app --host 0.0.0.0 --port 8080` (the guide's command) serves ragchat.

The app is built on first access of `app`, not at import, so importing this module does no work and
reads no environment; settings come from the environment when uvicorn asks for `app`.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "app":
        import sys

        from ragchat.api.app import create_app
        from ragchat.config import SettingsError, load_settings

        try:
            settings = load_settings()
        except SettingsError as exc:
            print(f"ragchat: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        return create_app(settings)
    raise AttributeError(name)
