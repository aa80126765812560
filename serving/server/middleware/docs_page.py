"""The docs page at ``/``: the service's own Swagger UI over ``/docs.json``, with nothing from
outside the host.

BentoML 1.4's page at ``/`` loads Google Tag Manager (a third-party script, which fails in an
air-gapped cluster), shows BentoML's title and badges, and the version "None". BentoML has no
hook to replace it (bentoml/BentoML#2975), so ``DocsPageMiddleware`` answers ``GET /`` with a
page built once at start-up: the project's title and version, and the Swagger UI files BentoML
already bundles and serves under ``/static_content/`` (``framework_internals.swagger_ui_assets``).
The page's Content-Security-Policy allows only this origin (and the page's one inline script,
by hash), so even a script or image added to the document later cannot call out.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections.abc import Callable, Mapping
from typing import Any

from serving.server.asgi import ASGIApp, Receive, Scope, Send

HTML = "text/html; charset=utf-8"

TITLE = "delivery-eta"
API_VERSION = "1"
UNBUILT = "not available"
"""BentoML's bento version of a service served from source rather than from a built bento."""


def service_info(model_tag: str, build: str) -> dict[str, Any]:
    """The OpenAPI ``info`` of the service: its title, a version naming the API, the served
    model and the build (the bento version, ``dev`` from source), and a description with
    nothing from outside the host (no badges, images or third-party links)."""
    build = "dev" if build in ("", UNBUILT) else build
    description = (
        "Delivery-time predictions for food orders, each with a calibrated 90 % interval.\n\n"
        "* `POST /v1/predict`: one order; `POST /v1/predict/batch`: many, answered in input "
        "order; `POST /v1/feedback`: the actual delivery time of an earlier prediction.\n"
        f"* Served model: `{model_tag}`; its feature contract (the request fields): "
        "[/contract](./contract).\n"
        "* State: [/health](./health); probes `/livez`, `/readyz`; Prometheus `/metrics`.\n"
        "* This document: [/docs.json](./docs.json)."
    )
    return {
        "title": TITLE,
        "version": f"{API_VERSION} (model {model_tag}, build {build})",
        "description": description,
    }


# Swagger UI over the corrected document. BaseLayout: no top bar (its URL box would let the page
# load any document) and no online validator badge (an image from validator.swagger.io).
_INIT_SCRIPT = """\
window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: %(spec_url)s,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
};
"""

_PAGE = """\
<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>%(title)s</title>
    <link rel="icon" href="data:,">
    <link rel="stylesheet" type="text/css" href=".%(assets)sswagger-ui.css">
    <style>
      body { margin: 0; background: #fafafa; }
      .delivery-eta-banner { font-family: sans-serif; padding: 12px 20px; background: #1f2d3d;
        color: #fff; font-size: 14px; }
    </style>
  </head>
  <body>
    <div class="delivery-eta-banner"><strong>%(title)s</strong> &middot; version %(version)s
      &middot; <a style="color:#9cf" href="%(spec_url_text)s">OpenAPI document</a></div>
    <div id="swagger-ui"></div>
    <script src=".%(assets)sswagger-ui-bundle.js" charset="UTF-8"></script>
    <script>%(init)s</script>
  </body>
</html>
"""


def docs_page(title: str, version: str, assets: str, spec_url: str = "./docs.json") -> bytes:
    """The page: ``title`` and ``version`` shown at once (before any script runs), Swagger UI
    from ``assets`` (an absolute path ending in ``/``, loaded relative to the page so that a
    proxy's path prefix still works) rendering ``spec_url``."""
    init = _INIT_SCRIPT % {"spec_url": json.dumps(spec_url)}
    page = _PAGE % {
        "title": html.escape(title),
        "version": html.escape(version),
        "assets": html.escape(assets),
        "spec_url_text": html.escape(spec_url),
        "init": init,
    }
    return page.encode()


def content_security_policy(page: bytes) -> str:
    """This origin only; inline scripts only those of ``page`` (by hash), no inline handlers.

    Swagger UI sets inline styles, and shows images of the document as data: URLs at most.
    """
    text = page.decode()
    hashes = []
    start = 0
    while (begin := text.find("<script>", start)) != -1:
        end = text.index("</script>", begin)
        digest = hashlib.sha256(text[begin + len("<script>") : end].encode()).digest()
        hashes.append(f"'sha256-{base64.b64encode(digest).decode()}'")
        start = end
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' {' '.join(hashes)}",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "font-src 'self'",
            "frame-src 'none'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
        ]
    )


class DocsPageMiddleware:
    """Answers ``GET``/``HEAD path`` with :func:`docs_page` titled and versioned as ``info()``
    says (:func:`service_info`); every other request passes on."""

    def __init__(
        self,
        app: ASGIApp,
        info: Callable[[], Mapping[str, Any]],
        assets: str,
        path: str = "/",
    ) -> None:
        self.app = app
        self.path = path
        # Called when the app starts, like the document's (openapi.py): the same title and version.
        about = info()
        self._body = docs_page(str(about["title"]), str(about["version"]), assets)
        self._headers = [
            (b"content-type", HTML.encode()),
            (b"content-length", str(len(self._body)).encode()),
            (b"content-security-policy", content_security_policy(self._body).encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("path") != self.path
            or scope.get("method") not in ("GET", "HEAD")
        ):
            await self.app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": self._headers})
        body = self._body if scope["method"] == "GET" else b""
        await send({"type": "http.response.body", "body": body})
