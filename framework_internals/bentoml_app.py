"""Touch-points 3, 10, 11, 14 and 15: what BentoML's own HTTP app does beside the service's APIs -- the
logger it writes failed requests to, the routes it serves by itself, the Swagger UI files it
bundles, how it binds the service's API methods and adds its response headers."""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

from framework_internals.versions import FrameworkDriftError

# --------------------------------------------------------------------------- 3. request logger

BENTOML_REQUEST_LOGGER = "bentoml._internal.server.http_app"


def bentoml_request_error_logger() -> logging.Logger:
    """The logger ``log_exception`` of BentoML's HTTP app writes failed requests to."""
    return logging.getLogger(BENTOML_REQUEST_LOGGER)


# --------------------------------------------------------------------------- 10. BentoML's routes

BENTOML_FIXED_ROUTES = (
    "/",
    "/docs.json",
    "/schema.json",
    "/metrics",
    "/livez",
    "/readyz",
    "/healthz",
)
"""Routes BentoML 1.4's service app adds beside the APIs (``_bentoml_impl.server.app``,
``bentoml._internal.server.base_app``); ``/static_content/<file>`` comes on top."""


def bentoml_fixed_paths() -> frozenset[str]:
    """Every path BentoML serves by itself: its fixed routes and each bundled static file."""
    from bentoml._internal import server as bentoml_server

    static = Path(bentoml_server.__file__).parent / "static_content"
    files = (f"/static_content/{p.relative_to(static).as_posix()}" for p in static.rglob("*"))
    return frozenset(BENTOML_FIXED_ROUTES) | frozenset(
        path for path in files if (static / path.removeprefix("/static_content/")).is_file()
    )


# --------------------------------------------------------------------------- 11. Swagger UI files

SWAGGER_UI_FILES = ("swagger-ui-bundle.js", "swagger-ui.css")
"""The Swagger UI files the docs page loads."""


def swagger_ui_assets() -> str:
    """The URL prefix (``/static_content/``) under which BentoML serves its bundled Swagger UI.

    Raises ``FrameworkDriftError`` if BentoML no longer ships one of ``SWAGGER_UI_FILES`` there
    (its service app mounts that folder unless the opt-in ``new_index`` feature is enabled).
    """
    from bentoml._internal import server as bentoml_server

    static = Path(bentoml_server.__file__).parent / "static_content"
    missing = [name for name in SWAGGER_UI_FILES if not (static / name).is_file()]
    if missing:
        raise FrameworkDriftError(f"BentoML no longer bundles {missing} in {static}")
    return "/static_content/"


# --------------------------------------------------------------------------- 14. API method binding


def bind_api_methods(instance: object) -> None:
    """Bind each API method of the service ``instance`` once, as BentoML binds it on every
    access: BentoML's endpoint looks the method up per request (``getattr(instance, name)``),
    and its descriptor (``_bentoml_sdk.method.APIMethod.__get__``) then rebuilds the callable,
    ``inspect.signature`` included -- ~4 % of a single-row request's CPU. The bound callable is
    kept in the instance's ``__dict__``, which Python consults before a non-data descriptor.

    A service called through a proxy (``__self_proxy__``: another process's client) is left
    alone: its binding depends on the proxy."""
    from _bentoml_sdk.method import APIMethod

    if getattr(instance, "__self_proxy__", None) is not None:
        return
    owner = type(instance)
    for name in dir(owner):
        method = inspect.getattr_static(owner, name)
        if isinstance(method, APIMethod):
            if hasattr(type(method), "__set__") or hasattr(type(method), "__delete__"):
                raise FrameworkDriftError(
                    "framework_internals.bentoml_app.bind_api_methods: BentoML's APIMethod "
                    "became a data descriptor; an instance attribute no longer takes its place"
                )
            vars(instance)[name] = method.__get__(instance, owner)


# --------------------------------------------------------------------------- 15. response headers

_PREBOUND = "_delivery_eta_prebound"


def prebind_response_headers() -> None:
    """Give BentoML's per-response header step (``ServiceAppFactory._add_response_headers``) its
    injected argument once instead of per request: the method is wrapped by ``simple_di.inject``,
    which binds the call's signature and resolves ``logging_format`` from BentoML's container on
    every response (~10 us of a request's ~700). The value is configuration (the request id's
    hex format), read on the first response; the headers set are the method's own."""
    from _bentoml_impl.server.app import ServiceAppFactory
    from bentoml._internal.configuration.containers import BentoMLContainer

    injected = ServiceAppFactory.__dict__["_add_response_headers"]
    if getattr(injected, _PREBOUND, False):
        return
    undecorated = getattr(injected, "__wrapped__", None)
    if undecorated is None or list(inspect.signature(undecorated).parameters) != [
        "self",
        "resp",
        "logging_format",
    ]:
        raise FrameworkDriftError(
            "framework_internals.bentoml_app.prebind_response_headers: "
            "ServiceAppFactory._add_response_headers is no longer "
            "inject(def (self, resp, logging_format=Provide[...]))"
        )
    resolved: list[dict[str, str]] = []

    def add_response_headers(self: Any, resp: Any) -> None:
        if not resolved:
            resolved.append(BentoMLContainer.logging_formatting.get())
        undecorated(self, resp, logging_format=resolved[0])

    setattr(add_response_headers, _PREBOUND, True)
    ServiceAppFactory._add_response_headers = add_response_headers
