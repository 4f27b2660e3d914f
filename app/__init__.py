"""Entry package for `uvicorn app.main:app`, the command the guide uses."""
