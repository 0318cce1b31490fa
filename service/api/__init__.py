"""HTTP API: thin FastAPI routers that parse, call one use case and respond; errors are
mapped to problem documents in one place (problems.py)."""

from .app import create_app

__all__ = ["create_app"]
