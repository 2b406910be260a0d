"""`create_app(settings)`: the Litestar application, its lifespan and its OpenAPI document."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from retriever.embeddings import EmbeddingModel
from retriever.http.auth import ApiKeys
from retriever.http.docs import DOCS_PATH, docs_page, docs_router
from retriever.http.problems import problem_response
from retriever.http.routes import routers
from retriever.http.schemas import refine_openapi
from retriever.serving import ServingEngine
from retriever.settings import Settings, get_settings

__all__ = ["create_app"]


def _version() -> str:
    try:
        return version("hybrid-rag")
    except PackageNotFoundError:
        return "0.0.0"


def _openapi(secured: bool) -> OpenAPIConfig:
    return OpenAPIConfig(
        title="hybrid-rag",
        version=_version(),
        description="Hybrid (BM25 + vector) retrieval on PostgreSQL. Errors are RFC 9457 problem details "
        "(application/problem+json). " + ("Send `Authorization: Bearer <API key>`." if secured else ""),
        path=DOCS_PATH,
        render_plugins=[docs_page()],  # its script and stylesheet served by the app itself, not a CDN
        openapi_router=docs_router(),
        components=Components(
            security_schemes={
                "bearer": SecurityScheme(
                    type="http", scheme="bearer", description="one of the keys in the server's API_KEYS"
                )
            }
        ),
    )


def create_app(settings: Settings | None = None, *, model: EmbeddingModel | None = None) -> Litestar:
    """The API over `settings` (default: the environment's); `model` replaces the configured embeddings (tests)."""
    settings = settings or get_settings()
    keys = ApiKeys(settings.api_keys)  # a malformed API_KEYS fails here, before anything starts

    engine = ServingEngine(settings, model=model)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with engine.serving():
            app.state.engine = engine
            yield

    app = Litestar(
        route_handlers=routers(secured=keys.enabled),
        lifespan=[lifespan],
        exception_handlers={Exception: problem_response},
        openapi_config=_openapi(keys.enabled),
        request_max_body_size=settings.max_request_bytes,
        logging_config=None,
        state=State({"api_keys": keys}),
    )
    refine_openapi(app.openapi_schema.components.schemas or {}, settings)
    return app
