"""Where the page's files are, in a checkout and in an installed wheel."""

from __future__ import annotations

from pathlib import Path

from shared.settings import REPO_ROOT


def site_dir() -> Path:
    """The page's folder: ``site/`` in a checkout, ``realtime/site`` in an installed wheel.

    The wheel force-includes ``site`` as ``realtime/site`` (``pyproject.toml``).
    """
    checkout = REPO_ROOT / "site"
    return checkout if (checkout / "index.html").is_file() else Path(__file__).parent / "site"
