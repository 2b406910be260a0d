"""The interactive API documentation at /schema: Scalar's page, with everything it loads served by this app.

Litestar's Scalar page loads its script and stylesheet from a CDN, so it is blank without the internet. Here the
script comes from the `offapi` package (Scalar's standalone bundle, shipped in the wheel) and a small stylesheet
from this module, both under /schema/assets/; Scalar's own calls out (its web fonts, telemetry, the agent and
MCP features) are turned off in its configuration. Any other path under /schema is a problem+json 404, like every
unknown path of the app (Litestar's docs router would answer an HTML page).
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path

from litestar import Response, Router, get
from litestar.exceptions import NotFoundException
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.response import File

from retriever.errors import ConfigurationError

__all__ = ["ASSETS", "DOCS_PATH", "docs_page", "docs_router"]

DOCS_PATH = "/schema"
ASSETS = f"{DOCS_PATH}/assets"

# Scalar's configuration (rendered into the page): nothing that reaches out to scalar.com
SCALAR_OPTIONS = {
    "withDefaultFonts": False,  # the fonts come from docs.css, not from fonts.scalar.com
    "telemetry": False,
    "showDeveloperTools": "never",
    "agent": {"disabled": True},
    "mcp": {"disabled": True},
}

# Scalar without its web fonts: the system's own
STYLESHEET = """\
:root {
  --scalar-font: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  --scalar-font-code: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
}
"""

_CACHE = {"Cache-Control": "public, max-age=86400"}  # the URLs carry offapi's version


@cache
def _scalar_bundle() -> Path:
    # found without importing offapi: its __init__ reads all its bundles (9 MB) into memory
    spec = find_spec("offapi")
    locations = list(spec.submodule_search_locations or []) if spec else []
    bundle = next((Path(folder) / "scalar.js" for folder in locations if (Path(folder) / "scalar.js").is_file()), None)
    if bundle is None:
        raise ConfigurationError("the API docs need Scalar's bundle from the `offapi` package: pip install offapi")
    return bundle


@get("/assets/scalar.js", sync_to_thread=False, include_in_schema=False)
def _scalar_js() -> File:
    return File(
        _scalar_bundle(),
        filename="scalar.js",
        content_disposition_type="inline",
        media_type="text/javascript",
        headers=_CACHE,
    )


@get("/assets/docs.css", sync_to_thread=False, include_in_schema=False)
def _docs_css() -> Response[str]:
    return Response(STYLESHEET, media_type="text/css", headers=_CACHE)


def _no_html_404(response: Response) -> Response:
    # Litestar's docs router answers /schema/<anything else> with its own HTML 404 page: raise instead, so that the
    # app's one exception handler answers it as problem+json
    if response.status_code == 404:
        raise NotFoundException()
    return response


def docs_router() -> Router:
    """The router at /schema: Litestar adds the page and /schema/openapi.json to it; here the assets."""
    return Router(
        DOCS_PATH,
        route_handlers=[_scalar_js, _docs_css],
        include_in_schema=False,
        after_request=_no_html_404,
    )


def docs_page() -> ScalarRenderPlugin:
    """Scalar at /schema (and /schema/scalar), loading only what this app serves."""
    _scalar_bundle()  # a missing package fails at start-up, not on the first visit
    tag = f"?v={version('offapi')}"
    return ScalarRenderPlugin(
        js_url=f"{ASSETS}/scalar.js{tag}",
        css_url=f"{ASSETS}/docs.css{tag}",
        favicon="",  # Litestar's default is an image on a CDN
        options=SCALAR_OPTIONS,
    )
