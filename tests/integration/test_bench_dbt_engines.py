"""bench/bench_dbt_engines.py at small scale: it builds the demo on DuckDB and on Sail and prints both times and their ratio."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_dbt_engines.py"


def test_the_engine_benchmark_prints_both_times_and_their_ratio(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--scale", "small", "--keep", str(tmp_path)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    wall = re.search(r"dbt run \(wall\)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)", result.stdout)
    assert wall, result.stdout
    duckdb_s, sail_s, ratio = map(float, wall.groups())
    assert duckdb_s > 0 and sail_s > 0 and abs(ratio - sail_s / duckdb_s) < 0.02
    assert re.search(r"Sail / DuckDB: [0-9.]+x \(target <= 2x: (met|missed)\)", result.stdout)
    assert "same row count per view on both engines: True" in result.stdout
    for view in ("merchant_profile", "merchant_risk", "user_profile", "user_transaction_aggregates"):
        assert re.search(rf"^{view}\s+[0-9.]+\s+[0-9.]+", result.stdout, re.M), view
