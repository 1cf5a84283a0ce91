"""The package layers of pyproject.toml hold, and `lint-imports` would catch a broken one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _copy(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "webapp", tree / "webapp", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_the_contracts_are_kept():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_layers(tmp_path):
    tree = _copy(tmp_path)
    models = tree / "webapp" / "payments" / "models.py"
    models.write_text(models.read_text() + "\nimport webapp.renewals.models  # noqa\n")
    result = _lint(tree)
    assert result.returncode != 0
    assert "Packages import only from the layers below them BROKEN" in result.stdout


def test_the_shop_importing_the_bank_breaks_a_contract(tmp_path):
    tree = _copy(tmp_path)
    views = tree / "webapp" / "shop" / "views.py"
    views.write_text(views.read_text() + "\nimport webapp.bank.models  # noqa\n")
    result = _lint(tree)
    assert result.returncode != 0
    assert "through the gateway client (HTTP) BROKEN" in result.stdout
