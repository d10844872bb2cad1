"""``scripts/install`` (README command 1's set-up step) on a copy of the checkout with its own ``.venv``.

Real venvs and real pip runs (from the package index or pip's cache): about 20-40 s in all.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared.settings import REPO_ROOT

pytestmark = pytest.mark.slow

INSTALLING = "install: installing mnist-live"


def tracked_copy(dest: Path) -> Path:
    """The checkout's tracked files as they are in the working tree (a fresh clone of this change)."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, check=True, capture_output=True, text=True
    ).stdout.split("\0")
    for name in filter(None, files):
        source = REPO_ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def install(checkout: Path) -> str:
    """Run ``scripts/install`` (no extras, as ``scripts/serve`` does); return its stderr."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PYTHON"] = sys.executable  # a Python 3.11+, as the script requires
    done = subprocess.run(
        ["bash", "scripts/install"],
        check=False,
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def assert_installed(checkout: Path) -> None:
    cli = checkout / ".venv" / "bin" / "mnist-live"
    done = subprocess.run([str(cli), "--version"], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("mnist-live 0."), done.stderr


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("needs a git checkout to copy")
    return tracked_copy(tmp_path_factory.mktemp("clone"))


def test_a_half_made_venv_with_a_stale_stamp_is_completed(checkout: Path) -> None:
    """An interrupted first run: the venv exists, the package does not, and a stamp claims it does."""
    subprocess.run([sys.executable, "-m", "venv", str(checkout / ".venv")], check=True)
    digest = hashlib.sha256((checkout / "pyproject.toml").read_bytes()).hexdigest()
    (checkout / ".venv" / ".mnist-live-install").write_text(f"{digest}\n")
    assert INSTALLING in install(checkout)
    assert_installed(checkout)


def test_an_up_to_date_install_runs_no_pip(checkout: Path) -> None:
    assert_installed(checkout)
    assert install(checkout) == ""


def test_a_package_removed_behind_the_stamp_is_reinstalled(checkout: Path) -> None:
    pip = [str(checkout / ".venv" / "bin" / "python"), "-m", "pip", "uninstall", "-q", "-y", "mnist-live"]
    subprocess.run(pip, check=True, capture_output=True)
    assert not (checkout / ".venv" / "bin" / "mnist-live").exists()
    assert INSTALLING in install(checkout)
    assert_installed(checkout)


def test_a_venv_whose_interpreter_is_gone_is_recreated(checkout: Path) -> None:
    for name in ("python", "python3"):
        (checkout / ".venv" / "bin" / name).unlink()
    err = install(checkout)
    assert "recreating" in err and INSTALLING in err
    assert_installed(checkout)


def test_a_missing_distribution_record_is_reinstalled(checkout: Path) -> None:
    """Only the ``dist-info`` gone (the ``.pth`` and the command left): the package looks importable but
    pip and ``importlib.metadata`` no longer know it."""
    [record] = (checkout / ".venv" / "lib").glob("python3*/site-packages/mnist_live-*.dist-info")
    shutil.rmtree(record)
    assert INSTALLING in install(checkout)
    assert_installed(checkout)
