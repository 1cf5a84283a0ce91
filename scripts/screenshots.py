"""Regenerate docs/screenshots/: each step of the three payment paths, 800 px wide, and the
populated demo (seed-demo's story) at 390 and 1280 px.

    python scripts/screenshots.py [folder]

It runs tests/e2e/test_screenshots.py, which starts the shop, the bank and the mail sink on
loopback (as the browser tests do) and walks the journey of tests/e2e/pages.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def main() -> int:
    target = Path(sys.argv[1] if len(sys.argv) > 1 else PROJECT / "docs" / "screenshots")
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("*.png"):
        old.unlink()
    env = {**os.environ, "SCREENSHOTS": str(target.resolve())}
    tests = ["tests/e2e/test_screenshots.py", "tests/e2e/test_demo_screenshots.py"]
    command = [sys.executable, "-m", "pytest", *tests, "-q"]
    result = subprocess.run([*command, "-p", "no:cacheprovider"], cwd=PROJECT, env=env, check=False)
    shots = sorted(target.glob("*.png"))
    print(f"{len(shots)} screenshots in {target}")
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
