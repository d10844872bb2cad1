"""Origin allowlist and token checks, enforced identically by the local server and on Lambda."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from shared import errors

if TYPE_CHECKING:  # the settings are only read, never built, here
    from shared.settings import Settings

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
"""Origins on these hosts are always allowed (development)."""


def check_origin(origin: str | None, host: str | None, allowed: Sequence[str]) -> None:
    """Refuse cross-site WebSocket hijacking (and cross-site HTTP calls).

    Allowed: no Origin (non-browser clients such as wscat), the same origin as ``host``, localhost on
    any port, or an origin listed in ``allowed``.

    Args:
        origin: The request's ``Origin`` header.
        host: The request's ``Host`` header.
        allowed: Exact origins (``scheme://host[:port]``), or ``*`` for any.

    Raises:
        ForbiddenOrigin: any other origin, or one that is not a URL.
    """
    if origin is None or "*" in allowed or origin in allowed:
        return
    try:
        parts = urlsplit(origin)
        hostname = (parts.hostname or "").lower()
        _ = parts.port  # a port that is not 0-65535 raises, as a browser never sends one
    except ValueError:  # not a URL (e.g. "http://[::1", "http://localhost:-1"): no origin we allow
        raise errors.ForbiddenOrigin("This origin is not allowed to connect.") from None
    web = parts.scheme in ("http", "https") and "@" not in parts.netloc and not parts.path.strip("/")
    if web and (hostname in LOCAL_HOSTS or (host is not None and parts.netloc.lower() == host.lower())):
        return
    raise errors.ForbiddenOrigin("This origin is not allowed to connect.")


def check_token(presented: str | None, expected: str | None) -> None:
    """Constant-time token comparison; no token configured means open access.

    Args:
        presented: Token from ``?token=`` or ``Authorization: Bearer``.
        expected: The configured token.

    Raises:
        Unauthorized: a token is configured and the presented one is missing or different.
    """
    if expected is None:
        return
    if presented is None or not hmac.compare_digest(
        presented.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    ):
        raise errors.Unauthorized("A valid token is required.")


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or ``None``."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def token_secret(settings: Settings) -> str | None:
    """The token clients must present (``MNIST_LIVE_AUTH_TOKEN``), or None when access is open."""
    return settings.auth_token.get_secret_value() if settings.auth_token else None
