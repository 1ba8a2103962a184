"""Copy installed distributions and everything they require (from this environment, the lock's versions) into a
folder, as a runtime without pip needs them: `python scripts/vendor.py OUT NAME...` prints what it copied.

Managed Flink installs nothing (no pip, no requirements file): every package the job imports is in its zip, under
the `pyFiles` folder of the run options. The copies are this environment's builds (CPython 3.11, Linux x86_64), the
platform the AWS runtimes run.
"""

from __future__ import annotations

import shutil
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement


def closure(names: list[str]) -> list[str]:
    """The distributions `names` need at run time (markers evaluated here, extras left out), sorted."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        for spec in distribution(name).requires or []:
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return sorted(seen)


def vendor(out: Path, names: list[str]) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in closure(names):
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            raise SystemExit(f"{name} is not installed here: run make setup") from None
        for file in dist.files or []:
            if file.suffix in (".pyc",) or "__pycache__" in file.parts or file.parts[0].endswith(".dist-info"):
                continue
            if file.parts[0] in ("..", "bin"):
                continue
            source = Path(file.locate())
            target = out / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        copied.append(f"{dist.metadata['Name']}=={dist.version}")
    return copied


if __name__ == "__main__":
    print(" ".join(vendor(Path(sys.argv[1]), sys.argv[2:])))
