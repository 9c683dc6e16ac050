"""Compare two run folders (demo, reproduce, ...) number for number, ignoring timings, timestamps and paths.

Used to show that a restructuring changes no result:

    python scripts/compare_runs.py runs/before runs/after

Every ``*.json`` under the first folder must exist under the second with the same content, apart from
keys that hold wall or CPU time, creation times, the command line, the machine and the device, and
apart from the folder's own path inside strings. Prints each difference and a closing count; exits 1
when anything differs.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

IGNORED_KEY = re.compile(r"seconds|^(elapsed_s|created|command|machine|torch_threads|device)$")


def normalized(value: Any, root: Path) -> Any:
    """``value`` without ignored keys, with ``root`` replaced by ROOT in strings."""
    if isinstance(value, str):
        return value.replace(str(root), "ROOT")
    if isinstance(value, dict):
        return {k: normalized(v, root) for k, v in value.items() if not IGNORED_KEY.search(k)}
    if isinstance(value, list):
        return [normalized(v, root) for v in value]
    return value


def differences(x: Any, y: Any, path: str) -> list[str]:
    """Every place where ``x`` and ``y`` differ, as readable lines."""
    if isinstance(x, dict) and isinstance(y, dict):
        out = [f"key only in one: {path}.{k}" for k in sorted(set(x) ^ set(y))]
        for k in x.keys() & y.keys():
            out += differences(x[k], y[k], f"{path}.{k}")
        return out
    if isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
        return [
            d for i, (u, v) in enumerate(zip(x, y, strict=True)) for d in differences(u, v, f"{path}[{i}]")
        ]
    return [] if x == y else [f"{path}: {x!r:.80} != {y!r:.80}"]


def main(before: Path, after: Path) -> int:
    """Compare the folders; print the differences; 0 when there are none."""
    files = sorted(p.relative_to(before) for p in before.rglob("*.json"))
    found = [f"missing: {rel}" for rel in files if not (after / rel).is_file()]
    for rel in files:
        if (after / rel).is_file():
            x = normalized(json.loads((before / rel).read_text()), before)
            y = normalized(json.loads((after / rel).read_text()), after)
            found += differences(x, y, str(rel))
    found += [
        f"only in {after}: {p.relative_to(after)}"
        for p in after.rglob("*.json")
        if p.relative_to(after) not in files
    ]
    print("\n".join(found))
    print(f"{len(files)} JSON files compared, {len(found)} differences")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
