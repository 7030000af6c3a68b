"""`hindsight drift`: PSI, KS and category shares, the ranking, the exit status and the HTML report."""

from __future__ import annotations

import datetime as dt
import math
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from hindsight.cli import main
from hindsight.drift import DriftError, categorical_drift, compare, numeric_drift, psi, read_served
from hindsight.serving.sampling import write_rows

UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC)


def population(rng: np.random.Generator, n: int, shift: float = 0.0, country_mix=(0.6, 0.3, 0.1)) -> dict:
    """The fraud service's shape: two numeric features, a string and a boolean; `shift` moves one numeric
    feature by that many standard deviations."""
    return {
        "amount_mean_30d": rng.normal(50 + shift * 10, 10, n).round(2),
        "txn_count_7d": rng.poisson(8, n),
        "home": rng.choice(["FR", "DE", "IT"], n, p=country_mix),
        "is_foreign_country": rng.random(n) < 0.2,
    }


def baseline_file(path, columns: dict) -> str:
    n = len(next(iter(columns.values())))
    table = pa.table({"user_id": np.arange(n), "event_timestamp": pa.array([NOW] * n), **columns,
                      "label": np.zeros(n, dtype=bool)})
    pq.write_table(table, path)
    return str(path)


def log_rows(uri: str, columns: dict, service: str = "fraud_detection", at: dt.datetime = NOW) -> None:
    names = list(columns)
    rows = []
    for i in range(len(columns[names[0]])):
        values = {name: columns[name][i].item() for name in names}
        rows.append((service, at.timestamp(), 4, {"user_id": i}, values))
    write_rows(uri, rows)


# -- statistics ---------------------------------------------------------------------------------


def test_psi_of_known_shares():
    assert psi([0.25] * 4, [0.25] * 4) == 0.0
    # (0.4-0.25)ln(0.4/0.25) + (0.1-0.25)ln(0.1/0.25) + 2 * 0
    assert psi([0.25] * 4, [0.4, 0.1, 0.25, 0.25]) == pytest.approx(0.15 * math.log(1.6) + 0.15 * math.log(2.5))
    # An empty bucket counts as 1e-4, so the result stays finite.
    assert psi([0.5, 0.5], [1.0, 0.0]) == pytest.approx(0.5 * math.log(2) + (0.0001 - 0.5) * math.log(0.0001 / 0.5))


def test_numeric_drift_buckets_at_baseline_deciles_and_runs_ks():
    rng = np.random.default_rng(1)
    base = rng.normal(0, 1, 20_000)
    same = numeric_drift("x", base, list(rng.normal(0, 1, 5_000)))
    moved = numeric_drift("x", base, list(rng.normal(1, 1, 5_000)))
    assert len(same.buckets) == 11 and same.buckets[-1].label == "(missing)"
    assert all(b.baseline == pytest.approx(0.1, abs=0.001) for b in same.buckets[:-1])
    assert same.psi < 0.01 and same.ks_statistic < 0.03 and same.ks_pvalue > 0.01
    # One standard deviation: PSI ~1, KS statistic ~0.38 (the largest gap between N(0,1) and N(1,1) CDFs).
    assert 0.8 < moved.psi < 1.3
    assert moved.ks_statistic == pytest.approx(0.383, abs=0.03) and moved.ks_pvalue < 1e-50


def test_missing_values_are_a_bucket_of_their_own():
    base = [1.0, 2.0, 3.0, 4.0] * 50
    served = [1.0, 2.0, None, None] * 50  # half the served rows found nothing
    d = numeric_drift("x", base, served)
    assert d.bucket("(missing)").baseline == 0.0 and d.bucket("(missing)").served == 0.5
    assert d.psi > 2
    assert d.served_rows == 200 and len(d.served_values) == 100


def test_category_share_changes():
    d = categorical_drift("home", ["FR"] * 60 + ["DE"] * 30 + [None] * 10, ["FR"] * 30 + ["DE"] * 50 + ["ES"] * 20)
    assert [(b.label, b.baseline, b.served, round(b.change, 2)) for b in d.buckets] == [
        ("FR", 0.6, 0.3, -0.3), ("DE", 0.3, 0.5, 0.2), ("(new)", 0.0, 0.2, 0.2), ("(missing)", 0.1, 0.0, -0.1),
    ]
    booleans = categorical_drift("flag", [True, False, False, False], [True, True, False, False])
    assert [(b.label, b.baseline, b.served) for b in booleans.buckets] == [
        ("false", 0.75, 0.5), ("true", 0.25, 0.5), ("(missing)", 0.0, 0.0),
    ]


# -- ranking and the command ---------------------------------------------------------------------


@pytest.fixture
def project(tmp_path):
    (tmp_path / "dbt_project.yml").write_text("name: p\n")
    return tmp_path


def drift_cli(project, *args):
    return CliRunner().invoke(main, ["drift", "--project-dir", str(project), *args], catch_exceptions=False)


def test_the_shifted_feature_ranks_first_and_the_command_exits_1(project):
    rng = np.random.default_rng(7)
    baseline = baseline_file(project / "train.parquet", population(rng, 5_000))
    uri = str(project / "data" / "served_features")
    log_rows(uri, population(rng, 2_000, shift=1.0))  # amount_mean_30d moved by one standard deviation
    report = project / "drift.html"

    result = drift_cli(project, "--service", "fraud_detection", "--baseline", baseline, "--report", str(report))

    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "service fraud_detection: 2000 served rows vs 5000 baseline rows (train.parquet)"
    ranked = [line.split()[1] for line in lines[3:7]]
    assert ranked[0] == "amount_mean_30d"
    assert set(ranked) == {"amount_mean_30d", "txn_count_7d", "home", "is_foreign_country"}
    assert "drifted" in lines[3] and all(line.endswith("stable") for line in lines[4:7])
    assert "drift above PSI 0.2 in 1 feature(s): amount_mean_30d (" in result.stderr
    html = report.read_text()
    # Self-contained: inline SVG plots, no script, nothing fetched.
    assert html.count("<svg") == 4 and "<script" not in html and not re.search(r"(src|href)=\"https?:", html)
    assert html.index("1. amount_mean_30d") < html.index("2. ")
    assert "1 of 4 features drifted (PSI above 0.2): amount_mean_30d" in html


def test_an_unshifted_sample_exits_0(project):
    rng = np.random.default_rng(8)
    baseline = baseline_file(project / "train.parquet", population(rng, 5_000))
    uri = str(project / "served")
    log_rows(uri, population(rng, 2_000))
    result = drift_cli(project, "--service", "fraud_detection", "--baseline", baseline, "--log", uri)
    assert result.exit_code == 0, result.output
    assert "no drift above PSI 0.2" in result.stderr
    assert [line.split()[-1] for line in result.stdout.splitlines()[3:7]] == ["stable"] * 4


def test_a_category_mix_change_is_drift(project):
    rng = np.random.default_rng(9)
    baseline = baseline_file(project / "train.parquet", population(rng, 5_000))
    uri = str(project / "served")
    log_rows(uri, population(rng, 2_000, country_mix=(0.2, 0.3, 0.5)))
    result = drift_cli(project, "--service", "fraud_detection", "--baseline", baseline, "--log", uri)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[3].split()[1:3] == ["home", "categorical"]


def test_since_selects_the_period_and_threshold_is_respected(project):
    rng = np.random.default_rng(10)
    baseline = baseline_file(project / "train.parquet", population(rng, 5_000))
    uri = str(project / "served")
    log_rows(uri, population(rng, 1_000, shift=2.0), at=NOW - dt.timedelta(days=10))  # an old incident
    log_rows(uri, population(rng, 1_000), at=NOW - dt.timedelta(hours=1))
    served = read_served(uri, "fraud_detection", since=NOW - dt.timedelta(days=2))
    assert served.rows == 1_000 and served.registry_versions == (4,)
    args = ["--service", "fraud_detection", "--baseline", baseline, "--log", uri]
    assert drift_cli(project, *args, "--since", "2d").exit_code == 0
    assert drift_cli(project, *args, "--since", (NOW - dt.timedelta(days=11)).isoformat()).exit_code == 1
    assert drift_cli(project, *args, "--since", "2d", "--threshold", "0.0001").exit_code == 1


def test_errors_exit_2_and_say_why(project):
    rng = np.random.default_rng(11)
    baseline = baseline_file(project / "train.parquet", population(rng, 100))
    result = drift_cli(project, "--service", "fraud_detection", "--baseline", baseline)
    assert result.exit_code == 2
    assert "no served-features log at " in result.stderr and "serving.sample_rate" in result.stderr
    uri = str(project / "served")
    log_rows(uri, population(rng, 10))
    result = drift_cli(project, "--service", "fraud_detectoin", "--baseline", baseline, "--log", uri)
    assert result.exit_code == 2
    assert "no rows for service 'fraud_detectoin' (did you mean 'fraud_detection'?)" in result.stderr
    other = baseline_file(project / "other.parquet", {"credit_limit": np.ones(5)})
    result = drift_cli(project, "--service", "fraud_detection", "--baseline", other, "--log", uri)
    assert result.exit_code == 2 and "other.parquet has none of the features served" in result.stderr
    result = drift_cli(project, "--service", "fraud_detection", "--baseline", baseline, "--since", "yesterday")
    assert result.exit_code == 2 and "neither a duration back from now" in result.stderr


def test_compare_reports_features_missing_from_the_baseline():
    rng = np.random.default_rng(12)
    columns = population(rng, 500)
    from hindsight.drift import ServedSample

    served = ServedSample({**{k: v.tolist() for k, v in columns.items()}, "new_feature": [1] * 500}, 500, (4,), NOW, NOW)
    baseline = pa.table(columns)
    result = compare(baseline, served, "fraud_detection")
    assert result.not_in_baseline == ("new_feature",)
    assert len(result.features) == 4 and not result.breached
    with pytest.raises(DriftError, match="has none of the features served"):
        compare(pa.table({"x": [1]}), served, "fraud_detection")
