"""``argparse`` types shared by the sub-commands: a bad value is a one-line usage error (exit 2).

Each takes the flag's text and returns the value, or raises :class:`argparse.ArgumentTypeError`, which
argparse reports as ``mnist-live CMD: error: argument --FLAG: MESSAGE``.
"""

from __future__ import annotations

import argparse
import math


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number (got {text})")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (seconds, rates, multipliers)."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0 (got {text})")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (a gap in milliseconds)."""
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (got {text})")
    return value


def share(text: str) -> float:
    """A share in [0, 1) (a rate of digits turned away)."""
    value = _number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a share in [0, 1) (got {text})")
    return value


def _whole(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be at least {least} (got {value})")
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1 (counts)."""
    return _whole(text, 1)


def non_negative_int(text: str) -> int:
    """A whole number >= 0."""
    return _whole(text, 0)


def port(text: str) -> int:
    """A TCP port, 0-65535 (0: any free port)."""
    value = non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be 0-65535 (got {value})")
    return value


def http_url(text: str) -> str:
    """An ``http://`` or ``https://`` URL with a host and a port in 0-65535 (``--url`` of a server).

    Parsed as httpx will send it, so what the request would refuse later (control characters, a host
    IDNA cannot encode, a bad port) is a usage error now.
    """
    import httpx

    try:
        url = httpx.URL(text)
        url.host.encode("idna")
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise argparse.ArgumentTypeError(f"not a URL: {text[:80]!r} ({exc})") from None
    if url.scheme not in ("http", "https") or not url.host or not 0 <= (url.port or 0) <= 65535:
        raise argparse.ArgumentTypeError(f"not an http(s)://host[:port] URL: {text[:80]!r}")
    return text


WORKERS_PER_CORE = 4
"""Most server processes per CPU core: beyond a few per core they only contend (uvicorn's docs suggest
about two per core)."""


def worker_count(text: str) -> int:
    """A number of worker processes (server or preprocessing): 1 to :data:`WORKERS_PER_CORE` per CPU core."""
    import os

    value = positive_int(text)
    most = WORKERS_PER_CORE * (os.cpu_count() or 1)
    if value > most:
        raise argparse.ArgumentTypeError(f"at most {most} ({WORKERS_PER_CORE} per CPU core; got {value})")
    return value


def stage_name(text: str) -> str:
    """An API Gateway stage name: 1-128 letters, digits, hyphens and underscores (AWS's rule)."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", text):
        raise argparse.ArgumentTypeError(f"a stage name is 1-128 letters, digits, - or _ (got {text!r})")
    return text
