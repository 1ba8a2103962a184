"""Add installed distributions and everything they require (from this environment: the lock's versions) to a zip,
as a runtime without pip needs them: `python scripts/vendor.py ZIP FOLDER NAME...` (FOLDER `.` for the zip's root)
prints what it added.

Managed Flink and Lambda install nothing: every package the code imports is in its zip (Managed Flink: under the
`pyFiles` folder of the run options; Lambda: at the root). The copies are this environment's builds (CPython 3.11,
Linux x86_64), the platform the AWS runtimes run.
"""

from __future__ import annotations

import sys
import zipfile
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


def vendor(archive: Path, folder: str, names: list[str]) -> list[str]:
    """Append the distributions' files to the zip under folder; returns name==version of each."""
    added = []
    with zipfile.ZipFile(archive, "a", zipfile.ZIP_DEFLATED) as zf:
        for name in closure(names):
            try:
                dist = distribution(name)
            except PackageNotFoundError:
                raise SystemExit(f"{name} is not installed here: run make setup") from None
            for file in dist.files or []:
                top = file.parts[0]
                if file.suffix == ".pyc" or "__pycache__" in file.parts or top in ("..", "bin"):
                    continue  # the metadata (.dist-info) stays: packages read their own version from it
                zf.write(Path(file.locate()), (Path(folder) / file).as_posix())
            added.append(f"{dist.metadata['Name']}=={dist.version}")
    return added


if __name__ == "__main__":
    print(" ".join(vendor(Path(sys.argv[1]), sys.argv[2], sys.argv[3:])))
