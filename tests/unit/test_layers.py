"""Imports run one way (scripts/check_layers.py): from the CLI down to the contracts, with no cycles."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _checker():
    spec = importlib.util.spec_from_file_location("check_layers", ROOT / "scripts" / "check_layers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_code_base_has_no_upward_import_and_no_cycle():
    done = subprocess.run([sys.executable, "scripts/check_layers.py"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "no cycles" in done.stdout


def test_an_upward_import_inside_a_function_and_a_cycle_are_found(tmp_path, monkeypatch):
    checker = _checker()
    for package in ("core", "api", "streaming"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "core" / "thing.py").write_text("def f():\n    from api import app\n")
    (tmp_path / "api" / "app.py").write_text("from core import thing\n")
    (tmp_path / "streaming" / "a.py").write_text("from streaming import b\n")
    (tmp_path / "streaming" / "b.py").write_text("def g():\n    import streaming.a\n")
    monkeypatch.setattr(checker, "ROOT", tmp_path)
    monkeypatch.setattr(checker, "PACKAGES", {"core", "api", "streaming"})
    found = checker.offences()
    assert "core/thing.py:2: core must not import api.app (api is not below it)" in found
    assert "import cycle among: api.app, core.thing" in found
    assert "import cycle among: streaming.a, streaming.b" in found
    assert len(found) == 3
