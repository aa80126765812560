"""Optional shared-token authentication of chosen routes (``Authorization: Bearer <token>``).

A route with a token answers 401 to any request without exactly that token, before the body is
read. The answer is the same whatever was wrong (no header, another scheme, a wrong token), and
the comparison takes the same time for every presented token: both sides are hashed first, so
``hmac.compare_digest`` compares equal-length digests and not even the token's length leaks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping

from pydantic import SecretStr

from serving.server.asgi import ASGIApp, Receive, Scope, Send, header
from serving.telemetry.request_notes import annotate

REALM = "delivery-eta"
UNAUTHORIZED_BODY = json.dumps({"error": "unauthorized"}).encode()


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def bearer_token_matches(authorization: str | None, expected_digest: bytes) -> bool:
    """Whether an ``Authorization`` header value is ``Bearer <the token>`` (scheme in any case,
    RFC 7235), given the token's SHA-256 digest; constant time in the presented token."""
    scheme, _, credentials = (authorization or "").partition(" ")
    token_ok = hmac.compare_digest(_digest(credentials.strip()), expected_digest)
    return token_ok and scheme.lower() == "bearer"


class BearerTokenMiddleware:
    """401 for requests to a protected path without its token; other paths pass untouched.

    ``tokens`` maps exact paths (as routed, e.g. ``/v1/feedback``) to their token; a path
    whose token is None is open.
    """

    def __init__(self, app: ASGIApp, tokens: Mapping[str, SecretStr | None]) -> None:
        self.app = app
        self._digests = {
            path: _digest(token.get_secret_value())
            for path, token in tokens.items()
            if token is not None
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._digests:
            expected = self._digests.get(scope.get("path", ""))
            if expected is not None and not bearer_token_matches(
                header(scope, b"authorization"), expected
            ):
                annotate(error_category="unauthorized", error="unauthorized")
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(UNAUTHORIZED_BODY)).encode()),
                            (b"www-authenticate", f'Bearer realm="{REALM}"'.encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": UNAUTHORIZED_BODY})
                return
        await self.app(scope, receive, send)
