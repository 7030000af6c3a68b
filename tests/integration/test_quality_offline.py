"""Great Expectations never phones home: importing it, checking expectations and validating a real
Delta table open no socket and resolve no host name, even with analytics left on and GX Cloud
credentials in the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

_REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent('''
    import json, socket, sys

    attempts = []

    def refuse(name):
        def guard(*args, **kwargs):
            attempts.append([name, repr(args[1:] if name.startswith("socket.") else args)[:200]])
            raise OSError(f"network disabled by the test ({name})")
        return guard

    socket.socket.connect = refuse("socket.connect")
    socket.socket.connect_ex = refuse("socket.connect_ex")
    socket.create_connection = refuse("create_connection")
    socket.getaddrinfo = refuse("getaddrinfo")
    socket.gethostbyname = refuse("gethostbyname")

    import datetime as dt, pathlib
    import pyarrow as pa
    from deltalake import write_deltalake
    from hindsight.quality.records import ValidationLog
    from hindsight.quality.validate import validate_view
    from hindsight.registry_sync.expectations import expectation_names
    from hindsight.registry_sync.model import Expectation, Feature, FeatureView

    folder = pathlib.Path(sys.argv[1])
    table = pa.table({"user_id": [1, 2, 3], "ts": pa.array([dt.datetime(2026, 1, 1)] * 3, pa.timestamp("us", "UTC")),
                      "amount": [1.0, 2.0, 300.0]})
    write_deltalake(str(folder / "spend"), table, configuration={"delta.enableChangeDataFeed": "true"})
    view = FeatureView("spend", "batch", ("user",), ("user_id",), "ts", None, None, True, str(folder / "spend"),
                       (Feature("amount", "float64"),),
                       expectations=(Expectation("expect_column_values_to_be_between", {"column": "amount", "max_value": 100}),
                                     Expectation("expect_column_mean_to_be_between", {"column": "amount", "min_value": 0})))
    outcome = validate_view(view, ValidationLog(folder / "validations.jsonl"))
    print(json.dumps({
        "attempts": attempts,
        "names": len(expectation_names()),
        "passed": outcome.record.passed,
        "observed": [r.observed_value for r in outcome.record.results],
        "unexpected": [r.unexpected_count for r in outcome.record.results],
    }))
''')


def test_validation_opens_no_network_connection(tmp_path):
    env = {
        **os.environ,
        # Left on and pointed at GX Cloud: Hindsight must turn analytics off and stay ephemeral itself.
        "GX_ANALYTICS_ENABLED": "true",
        "GX_CLOUD_ORGANIZATION_ID": "00000000-0000-0000-0000-000000000000",
        "GX_CLOUD_ACCESS_TOKEN": "not-a-token",
    }
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, env=env,
                          cwd=_REPO, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["attempts"] == []
    assert report["names"] >= 50
    assert report["passed"] is False
    assert report["unexpected"] == [1, None]
    assert report["observed"] == [None, 101.0]
