"""The job's own JVM operators: built with javac into the user's cache, once per source version."""

from __future__ import annotations

import zipfile

import pytest

from flink_jobs import jars


def test_the_jar_is_built_once_and_holds_the_operators(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    built = jars.build_jar()
    assert built.parent == tmp_path / "demand" / "jars" and built == jars.jar_path()
    names = set(zipfile.ZipFile(built).namelist())
    assert {"demand/flink/MicroBatcher.class", "demand/flink/SplitLines.class"} <= names
    stamp = built.stat().st_mtime_ns
    assert jars.build_jar() == built and built.stat().st_mtime_ns == stamp  # cached, not rebuilt


def test_no_jdk_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(jars.JarBuildError, match="javac was not found.*openjdk-17-jdk-headless"):
        jars.build_jar()


def test_a_compile_error_is_reported_with_javac_output(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    broken = tmp_path / "java"
    broken.mkdir()
    (broken / "Broken.java").write_text("class Broken { int x = ; }\n")
    monkeypatch.setattr(jars, "SOURCES", broken)
    with pytest.raises(jars.JarBuildError, match=r"(?s)javac failed.*Broken.java:1: error"):
        jars.build_jar()
    assert not list((tmp_path / "cache").rglob("*.jar"))
