"""The HTTP API (Litestar): `create_app(settings)`; run it with `hybrid-rag serve`."""

from retriever.http.app import create_app

__all__ = ["create_app"]
