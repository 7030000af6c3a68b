"""`make bench` runs every benchmark, and the benchmarks stand on their own (no imports from tests/)."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = sorted(BENCH.glob("*.py"))


def run_all():
    spec = importlib.util.spec_from_file_location("bench_run_all", BENCH / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_all_runs_every_benchmark_script():
    assert sorted(run_all().SCRIPTS.values()) == sorted(p.name for p in BENCH.glob("bench_*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_no_benchmark_imports_the_tests(script):
    imported = set()
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert not {name for name in imported if name == "tests" or name.startswith("tests.")}


def _scaled() -> list[Path]:
    module = run_all()
    unscaled = {module.SCRIPTS[name] for name in module._UNSCALED}
    return [p for p in SCRIPTS if p.name.startswith("bench_") and p.name not in unscaled]


@pytest.mark.parametrize("script", _scaled(), ids=lambda p: p.name)
def test_every_benchmark_whose_load_grows_with_data_takes_a_scale(script):
    result = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--scale {medium,small}" in result.stdout or "--scale {small,medium}" in result.stdout


def test_run_all_names_an_unknown_benchmark():
    result = subprocess.run([sys.executable, str(BENCH / "run_all.py"), "--only", "offlin"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert ("--only: unknown benchmark 'offlin' (did you mean 'offline'?); "
            "choose from offline, training, sync, serving, spark_training") in result.stderr
