"""Score per module of the last `mutmut run`, and the survivors' diffs in mutants-survivors/.

A mutant listed in tests/mutants_equivalent.txt (its name, then the reason) behaves like the
original for every input and is left out of the score; the report says how many were.
Usage: python scripts/mutants_report.py path/to/mutmut [MUTANT_GLOB ...] [!MUTANT_GLOB ...]
(a glob after "!" leaves its mutants out: scripts/mutants.sh reports the PostgreSQL-only modules
in their own pass).
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

KILLED = {"killed", "timeout", "caught by type check", "segfault"}
OUT = Path("mutants-survivors")
EQUIVALENT = Path("tests/mutants_equivalent.txt")


def equivalents() -> dict[str, str]:
    found = {}
    for line in EQUIVALENT.read_text().splitlines() if EQUIVALENT.exists() else []:
        if line.strip() and not line.startswith("#"):
            name, _, reason = line.partition(" ")
            found[name] = reason.strip()
    return found


def main(mutmut: str, globs: list[str]) -> None:
    listing = subprocess.run(
        [mutmut, "results", "--all", "true"], capture_output=True, text=True, check=True
    ).stdout
    by_module: dict[str, Counter] = defaultdict(Counter)
    survivors: dict[str, list[str]] = defaultdict(list)
    skip = equivalents()
    left_out = [g[1:] for g in globs if g.startswith("!")]
    globs = [g for g in globs if not g.startswith("!")]
    for name, status in re.findall(r"^\s+(\S+): (.+)$", listing, re.M):
        if globs and not any(fnmatch.fnmatch(name, g) for g in globs):
            continue
        if any(fnmatch.fnmatch(name, g) for g in left_out):
            continue
        module = re.split(r"\.x(?:_|ǁ)", name)[0]
        if status == "not checked":
            by_module[module]["not checked"] += 1
        elif name in skip:
            by_module[module]["equivalent"] += 1
        elif status in KILLED:
            by_module[module]["killed"] += 1
        else:
            by_module[module]["survived"] += 1
            survivors[module].append(name)
    OUT.mkdir(exist_ok=True)
    print(f"{'module':45} {'killed':>7} {'surv.':>6} {'equiv.':>6} {'unrun':>6} {'score':>7}")
    for module in sorted(by_module):
        c = by_module[module]
        run = c["killed"] + c["survived"]
        score = f"{100 * c['killed'] / run:.1f}%" if run else "-"
        print(
            f"{module:45} {c['killed']:7} {c['survived']:6} {c['equivalent']:6}"
            f" {c['not checked']:6} {score:>7}"
        )
        diffs = [
            subprocess.run([mutmut, "show", n], capture_output=True, text=True).stdout
            for n in survivors[module]
        ]
        (OUT / f"{module}.diff").write_text("\n".join(diffs))
    print(f"survivors' diffs: {OUT}/<module>.diff")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
