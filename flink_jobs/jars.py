"""The job's own JVM code (flink_jobs/java: the micro-batcher, the line splitter, the item bucket function), in a jar.

Built with the JDK's javac against the Flink jars PyFlink ships (nothing is downloaded), once per source
version, into the user's cache; `make setup` builds it, and the job builds it on first use if it is missing.
On AWS the classes travel inside the application's jar file (scripts/package.sh).

    python -m flink_jobs.jars      # build (if needed) and print the jar's path
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

SOURCES = Path(__file__).parent / "java"
JAVA_RELEASE = "11"  # the oldest Java that Flink 2.x (and Managed Flink) runs on


class JarBuildError(RuntimeError):
    pass


def _sources() -> list[Path]:
    return sorted(SOURCES.rglob("*.java"))


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "demand" / "jars"


def jar_path() -> Path:
    """Where the jar for the current sources lives (the name hashes the sources, the Flink version compiled
    against and the Java release, so an upgrade of either builds a new jar)."""
    from pyflink.version import __version__ as flink_version

    digest = hashlib.sha256(f"flink {flink_version} java {JAVA_RELEASE}".encode())
    for source in _sources():
        digest.update(source.relative_to(SOURCES).as_posix().encode() + b"\0" + source.read_bytes())
    return _cache_dir() / f"demand-flink-{digest.hexdigest()[:12]}.jar"


def _javac() -> str:
    home = os.environ.get("JAVA_HOME")
    candidates = [str(Path(home) / "bin" / "javac")] if home else []
    candidates.append(shutil.which("javac") or "")
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    raise JarBuildError(
        "javac was not found (JAVA_HOME or PATH): the outlier split job needs a JDK to build its micro-batching "
        "operator once. Install one (for example: sudo apt-get install openjdk-17-jdk-headless) or run make setup."
    )


def build_jar() -> Path:
    """The jar for the current sources: from the cache, or compiled now (a few seconds)."""
    target = jar_path()
    if target.is_file():
        return target
    import pyflink

    flink = Path(pyflink.__file__).parent
    classpath = os.pathsep.join(str(flink / d / "*") for d in ("lib", "opt"))
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="demand-javac-") as tmp:
        classes = Path(tmp) / "classes"
        cmd = [_javac(), "--release", JAVA_RELEASE, "-nowarn", "-d", str(classes), "-cp", classpath]
        done = subprocess.run([*cmd, *map(str, _sources())], capture_output=True, text=True)
        if done.returncode != 0:
            raise JarBuildError(f"javac failed building {target.name}:\n{done.stderr.strip()}")
        partial = target.with_name(f".{target.name}.{os.getpid()}")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as jar:
            for path in sorted(classes.rglob("*.class")):
                jar.write(path, path.relative_to(classes).as_posix())
        os.replace(partial, target)  # atomic: a concurrent build never sees half a jar
    return target


if __name__ == "__main__":
    try:
        print(build_jar())
    except JarBuildError as exc:
        sys.exit(f"error: {exc}")
