"""Installed distributions and everything they require (from this environment: the lock's versions), for runtimes
that must not reach a package index.

- `python scripts/vendor.py ZIP FOLDER NAME...` adds their files to a zip (FOLDER `.` for the zip's root) and prints
  what it added. Managed Flink and Lambda install nothing: every package the code imports is in its zip (Managed
  Flink: under the `pyFiles` folder of the run options; Lambda: at the root).
- `python scripts/vendor.py --wheels DIR NAME... [--without NAME...]` rebuilds each as a wheel in DIR (leaving out
  what the `--without` distributions bring) and prints the file names. Glue installs them with pip `--no-index`.

The copies are this environment's builds (CPython 3.11, Linux x86_64), the platform the AWS runtimes run.
"""

from __future__ import annotations

import base64
import hashlib
import re
import sys
import zipfile
from collections.abc import Sequence
from importlib.metadata import Distribution, PackageNotFoundError, distribution
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


def _installed(name: str) -> Distribution:
    try:
        return distribution(name)
    except PackageNotFoundError:
        raise SystemExit(f"{name} is not installed here: run make setup") from None


def _package_files(dist: Distribution) -> list[tuple[Path, str]]:
    """(file on disk, path inside site-packages) of what the distribution installed there: no caches, no scripts
    outside site-packages; the metadata (.dist-info) stays, packages read their own version from it."""
    kept = []
    for file in dist.files or []:
        if file.suffix == ".pyc" or "__pycache__" in file.parts or file.parts[0] in ("..", "bin"):
            continue
        kept.append((Path(str(file.locate())), file.as_posix()))
    return kept


def vendor(archive: Path, folder: str, names: list[str]) -> list[str]:
    """Append the distributions' files to the zip under folder; returns name==version of each."""
    added = []
    with zipfile.ZipFile(archive, "a", zipfile.ZIP_DEFLATED) as zf:
        for name in closure(names):
            dist = _installed(name)
            for path, inside in _package_files(dist):
                zf.write(path, (Path(folder) / inside).as_posix())
            added.append(f"{dist.metadata['Name']}=={dist.version}")
    return added


def wheel_names(names: Sequence[str], without: Sequence[str] = ()) -> list[str]:
    """The distributions `names` need that the `without` ones do not bring, sorted."""
    provided = set(closure(list(without)))
    return [name for name in closure(list(names)) if name not in provided]


def wheel_file(name: str) -> str:
    """The file name of the distribution's wheel: name-version-tags.whl from its WHEEL metadata (PEP 427)."""
    dist = _installed(name)
    tags = [line.split(":", 1)[1].strip() for line in (dist.read_text("WHEEL") or "").splitlines()
            if line.startswith("Tag:")]  # fmt: skip
    if not tags:
        raise SystemExit(f"{name} was not installed from a wheel (no Tag in its WHEEL file): reinstall it from one")
    parts = [sorted({tag.split("-")[i] for tag in tags}) for i in range(3)]
    project = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    return f"{project}-{dist.version}-" + "-".join(".".join(p) for p in parts) + ".whl"


# Files an installer writes into .dist-info; a wheel does not carry them (RECORD is written anew).
_INSTALLER_FILES = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def build_wheel(name: str, out: Path) -> Path:
    """Rebuild the installed distribution as a wheel in `out` (same bytes every time: fixed times, sorted entries)."""
    dist = _installed(name)
    target = out / wheel_file(name)
    files = [(path, inside) for path, inside in _package_files(dist)
             if not (".dist-info/" in inside and inside.rsplit("/", 1)[-1] in _INSTALLER_FILES)]  # fmt: skip
    info = next(inside.split("/", 1)[0] for _, inside in files if ".dist-info/" in inside)
    record = []
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, inside in sorted(files, key=lambda f: f[1]):
            data = path.read_bytes()
            entry = zipfile.ZipInfo(inside, date_time=(1980, 1, 1, 0, 0, 0))
            entry.external_attr = (path.stat().st_mode & 0o777 | 0o100000) << 16
            zf.writestr(entry, data, zipfile.ZIP_DEFLATED)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{inside},sha256={digest},{len(data)}")
        record.append(f"{info}/RECORD,,")
        zf.writestr(zipfile.ZipInfo(f"{info}/RECORD", date_time=(1980, 1, 1, 0, 0, 0)), "\n".join(record) + "\n")
    return target


def main(argv: list[str]) -> None:
    if argv[:1] == ["--wheels"]:
        out, rest = Path(argv[1]), argv[2:]
        cut = rest.index("--without") if "--without" in rest else len(rest)
        names, without = rest[:cut], rest[cut + 1 :]
        out.mkdir(parents=True, exist_ok=True)
        print(" ".join(build_wheel(name, out).name for name in wheel_names(names, without)))
    else:
        print(" ".join(vendor(Path(argv[0]), argv[1], argv[2:])))


if __name__ == "__main__":
    main(sys.argv[1:])
