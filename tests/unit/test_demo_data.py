"""The demo data generator: determinism, exact schemas, realism bands and arrival by loaded_at."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from hindsight.cli import main
from hindsight.demo.entities import MerchantPicker
from hindsight.demo.window import separate_equal_times
from hindsight.demo_data import DEFAULT_SEED, DemoDataError, generate

END = dt.date(2026, 6, 1)
END_TS = pd.Timestamp("2026-06-01", tz="UTC")
START_TS = END_TS - pd.Timedelta(days=180)
TABLES = ("users", "merchants", "transactions", "user_updates")
TS = pa.timestamp("us", tz="UTC")
EXPECTED_SCHEMAS = {
    "users": pa.schema(
        [("user_id", pa.int64()), ("home_country", pa.string()), ("signup_ts", TS),
         ("birth_year", pa.int32())]
    ),
    "merchants": pa.schema(
        [("merchant_id", pa.int64()), ("category", pa.string()), ("country", pa.string()),
         ("created_ts", TS)]
    ),
    "transactions": pa.schema([
        ("transaction_id", pa.int64()), ("user_id", pa.int64()), ("merchant_id", pa.int64()),
        ("amount", pa.float64()), ("country", pa.string()), ("ts", TS), ("is_fraud", pa.bool_()),
        ("loaded_at", TS),
    ]),  # fmt: skip
    "user_updates": pa.schema([
        ("user_id", pa.int64()), ("home_country", pa.string()), ("credit_limit", pa.float64()),
        ("account_tier", pa.string()), ("updated_at", TS), ("loaded_at", TS),
    ]),  # fmt: skip
}


def parts(raw: Path, table: str) -> list[Path]:
    return sorted((raw / table).glob("*.parquet"))


def read(raw: Path, table: str) -> pd.DataFrame:
    return pa.concat_tables([pq.read_table(p) for p in parts(raw, table)]).to_pandas()


def file_bytes(raw: Path) -> dict[str, bytes]:
    return {str(p.relative_to(raw)): p.read_bytes() for p in sorted(raw.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def full(tmp_path_factory) -> Path:
    raw = tmp_path_factory.mktemp("raw_full")
    generate(raw, scale="small", end=END, seed=DEFAULT_SEED)
    return raw


@pytest.fixture(scope="session")
def frames(full) -> dict[str, pd.DataFrame]:
    return {table: read(full, table) for table in TABLES}


def test_same_arguments_give_byte_identical_files(full, tmp_path):
    generate(tmp_path, scale="small", end=END, seed=DEFAULT_SEED)
    assert file_bytes(tmp_path) == file_bytes(full)


def test_another_seed_gives_other_data(frames, tmp_path):
    generate(tmp_path, scale="small", end=END, seed=DEFAULT_SEED + 1)
    assert not read(tmp_path, "transactions").equals(frames["transactions"])


def test_each_table_has_one_part_with_the_exact_schema(full):
    for table, expected in EXPECTED_SCHEMAS.items():
        (part,) = parts(full, table)
        assert part.name == "part-00000.parquet"
        assert pq.read_schema(part).equals(expected, check_metadata=False), table


def test_small_scale_sizes(frames):
    assert len(frames["users"]) == 1_000
    assert len(frames["merchants"]) == 100
    assert 27_000 <= len(frames["transactions"]) <= 33_000
    # One row per user at the start of their history plus about 0.9 changes each.
    assert frames["user_updates"].user_id.nunique() == 1_000
    assert 1_700 <= len(frames["user_updates"]) <= 2_200


def test_event_times_lie_in_the_180_days_before_end(frames):
    tx, updates = frames["transactions"], frames["user_updates"]
    assert tx.ts.min() >= START_TS and tx.ts.max() < END_TS
    assert updates.updated_at.min() == START_TS and updates.updated_at.max() < END_TS
    assert frames["users"].signup_ts.max() < END_TS
    # Irregular times: no grid, so hardly any two transactions share a second.
    assert tx.ts.dt.floor("s").nunique() > 0.99 * len(tx)


def test_keys_are_unique(frames):
    tx, updates = frames["transactions"], frames["user_updates"]
    assert tx.transaction_id.is_unique
    assert not tx.duplicated(["user_id", "ts"]).any()
    assert not updates.duplicated(["user_id", "updated_at"]).any()
    assert frames["users"].user_id.is_unique and frames["merchants"].merchant_id.is_unique


def test_transaction_ids_follow_time(frames):
    tx = frames["transactions"].sort_values("transaction_id")
    assert tx.ts.is_monotonic_increasing


def test_no_transaction_before_signup(frames):
    tx = frames["transactions"].merge(frames["users"], on="user_id")
    assert len(tx) == len(frames["transactions"])
    assert (tx.ts > tx.signup_ts).all()


def test_some_users_sign_up_during_the_window_and_start_their_history_there(frames):
    users, updates = frames["users"], frames["user_updates"]
    new = users[users.signup_ts >= START_TS]
    assert 0.08 <= len(new) / len(users) <= 0.25
    first = updates.groupby("user_id").updated_at.min()
    expected = users.set_index("user_id").signup_ts.clip(lower=START_TS)
    pd.testing.assert_series_equal(first.sort_index(), expected.sort_index(), check_names=False)


def test_fraud_rate_is_about_one_percent_and_follows_risk(frames):
    merchants = frames["merchants"]
    tx = frames["transactions"].merge(merchants, on="merchant_id", suffixes=("", "_merchant"))
    assert 0.005 <= tx.is_fraud.mean() <= 0.02
    large = tx.amount > tx.groupby("category").amount.transform("quantile", 0.9)
    assert tx[large].is_fraud.mean() > 2 * tx[~large].is_fraud.mean()
    home = tx.merge(frames["users"], on="user_id").home_country
    abroad = tx.country.to_numpy() != home.to_numpy()
    assert tx[abroad].is_fraud.mean() > 3 * tx[~abroad].is_fraud.mean()


def test_fraud_comes_in_bursts_on_compromised_cards(frames):
    fraud = frames["transactions"].query("is_fraud").sort_values(["user_id", "ts"])
    gap = fraud.groupby("user_id").ts.diff()
    # Many fraud transactions follow another one on the same card within two hours.
    assert (gap < pd.Timedelta(hours=2)).sum() >= 50


def top_decile_share(counts: pd.Series) -> float:
    return counts.nlargest(max(1, len(counts) // 10)).sum() / counts.sum()


def test_activity_is_skewed(frames):
    # Evenly spread activity would give the busiest tenth 10% of the transactions.
    assert top_decile_share(frames["transactions"].user_id.value_counts()) > 0.35
    assert top_decile_share(frames["transactions"].merchant_id.value_counts()) > 0.25


def test_amounts_depend_on_the_category(frames):
    tx = frames["transactions"].merge(frames["merchants"], on="merchant_id")
    median = tx.groupby("category").amount.median()
    assert median["travel"] > 5 * median["grocery"]
    assert (tx.amount > 0).all() and (tx.amount.round(2) == tx.amount).all()


def test_most_transactions_happen_in_the_home_country_of_the_day(frames):
    updates = frames["user_updates"].sort_values("updated_at")
    tx = frames["transactions"].sort_values("ts")
    as_of = pd.merge_asof(tx, updates, left_on="ts", right_on="updated_at", by="user_id")
    domestic = (as_of.country == as_of.home_country).mean()
    assert 0.85 <= domestic <= 0.98
    moved = updates.groupby("user_id").home_country.nunique()
    assert (moved > 1).sum() >= 10


def test_rows_arrive_after_the_event_and_some_arrive_late(frames):
    tx, updates = frames["transactions"], frames["user_updates"]
    delay = tx.loaded_at - tx.ts
    assert (delay > pd.Timedelta(0)).all()
    late = delay > pd.Timedelta(hours=1)
    assert 0.01 <= late.mean() <= 0.035
    assert delay[~late].max() <= pd.Timedelta(minutes=16)
    assert delay.max() <= pd.Timedelta(hours=48)
    update_delay = updates.loaded_at - updates.updated_at
    corrections = update_delay > pd.Timedelta(days=2)
    assert corrections.sum() >= 10 and update_delay.max() <= pd.Timedelta(days=10)
    assert (tx.loaded_at >= END_TS).any(), "some rows arrive after the window: 'tomorrow'"


def key_sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.sort_values(keys).reset_index(drop=True)


@settings(max_examples=5, deadline=None)
@given(hours_before_end=st.integers(min_value=-24, max_value=24 * 179))
def test_a_split_by_loaded_at_unions_to_the_full_write(
    full, frames, tmp_path_factory, hours_before_end
):
    raw = tmp_path_factory.mktemp("raw_split")
    split = (END_TS - pd.Timedelta(hours=hours_before_end)).to_pydatetime()
    first = generate(raw, scale="small", end=END, loaded_before=split)
    second = generate(raw, scale="small", end=END, loaded_from=split)
    assert second["users"] == second["merchants"] == 0
    keys_of = {"transactions": ["transaction_id"], "user_updates": ["user_id", "updated_at"]}
    for table, keys in keys_of.items():
        assert first[table] + second[table] == len(frames[table])
        before, after = (pq.read_table(p).to_pandas() for p in parts(raw, table))
        assert (before.loaded_at < split).all() and (after.loaded_at >= split).all()
        union = key_sorted(pd.concat([before, after]), keys)
        pd.testing.assert_frame_equal(union, key_sorted(frames[table], keys))
    for table in ("users", "merchants"):
        assert file_bytes(raw / table) == file_bytes(full / table)


def test_appends_chain_and_each_part_has_the_same_schema(frames, tmp_path):
    t1, t2 = "2026-03-01T00:00:00Z", "2026-05-20T06:30:00+02:00"
    generate(tmp_path, end=END, loaded_before=t1)
    generate(tmp_path, end=END, loaded_from=t1, loaded_before=t2)
    generate(tmp_path, end=END, loaded_from=t2)
    for table in ("transactions", "user_updates"):
        names = [p.name for p in parts(tmp_path, table)]
        assert names == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
        for part in parts(tmp_path, table):
            assert pq.read_schema(part).equals(EXPECTED_SCHEMAS[table], check_metadata=False)
    union = key_sorted(read(tmp_path, "transactions"), ["transaction_id"])
    pd.testing.assert_frame_equal(union, key_sorted(frames["transactions"], ["transaction_id"]))


def test_a_fresh_write_replaces_earlier_parts(full, tmp_path):
    generate(tmp_path, end=END, loaded_before="2026-04-01")
    generate(tmp_path, end=END, loaded_from="2026-04-01")
    generate(tmp_path, end=END)
    assert file_bytes(tmp_path) == file_bytes(full)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"scale": "large"}, "unknown scale 'large'"),
        ({"seed": -1}, "non-negative"),
        ({"loaded_before": "yesterday"}, "cannot parse timestamp 'yesterday'"),
        ({"end": "June"}, "cannot parse end date"),
        ({"loaded_before": "2026-05-01", "loaded_from": "2026-05-01"}, "must be earlier"),
        ({"loaded_from": "2026-05-01"}, "nothing to append to"),
    ],
)
def test_bad_arguments_are_named(tmp_path, arguments, message):
    with pytest.raises(DemoDataError, match=message):
        generate(tmp_path, **{"end": END, **arguments})
    assert not any(tmp_path.rglob("*.parquet"))


@pytest.mark.parametrize(
    ("append", "message"),
    [
        ({"loaded_from": "2026-05-02"}, "append with --loaded-from 2026-05-01T00:00:00"),
        ({"loaded_from": "2026-05-01", "seed": 8}, "seed=7"),
        ({"loaded_from": "2026-05-01", "end": dt.date(2026, 6, 2)}, "end=2026-06-01"),
    ],
)
def test_an_append_must_continue_the_same_data(tmp_path, append, message):
    generate(tmp_path, end=END, loaded_before="2026-05-01")
    before = file_bytes(tmp_path)
    with pytest.raises(DemoDataError, match=message):
        generate(tmp_path, **{"end": END, **append})
    assert file_bytes(tmp_path) == before


def test_an_append_to_complete_data_is_refused(full):
    with pytest.raises(DemoDataError, match="already complete"):
        generate(full, end=END, loaded_from="2026-05-01")


def test_out_dir_defaults_to_the_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("HINDSIGHT_RAW_DATA", str(tmp_path / "raw"))
    rows = generate(end=END)
    assert rows["users"] == len(read(tmp_path / "raw", "users")) == 1_000


def test_cli_writes_and_prints_one_line_per_table(full, tmp_path):
    arguments = ["demo-data", "--scale", "small", "--end", "2026-06-01", "--out", str(tmp_path)]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines] == list(TABLES)
    assert f"{len(read(tmp_path, 'transactions')):,} rows" in lines[2]
    assert lines[0].endswith(str(tmp_path / "users" / "part-00000.parquet"))
    assert file_bytes(tmp_path) == file_bytes(full)


def test_cli_appends_and_reports_bad_input_without_a_traceback(tmp_path):
    runner = CliRunner()
    out = ["--end", "2026-06-01", "--out", str(tmp_path)]
    assert runner.invoke(main, ["demo-data", *out, "--loaded-before", "2026-05-01"]).exit_code == 0
    appended = runner.invoke(main, ["demo-data", *out, "--loaded-from", "2026-05-01"])
    assert appended.exit_code == 0, appended.output
    assert "unchanged (append)" in appended.output
    assert "transactions/part-00001.parquet" in appended.output
    bad = runner.invoke(main, ["demo-data", *out, "--loaded-from", "soon"])
    assert bad.exit_code == 2
    assert "cannot parse timestamp 'soon'" in bad.output and "Traceback" not in bad.output


@settings(max_examples=50, deadline=None)
@given(
    entity=st.lists(st.integers(0, 3), min_size=1, max_size=40),
    seed=st.integers(0, 2**32 - 1),
)
def test_separate_equal_times_breaks_every_tie_by_moving_forward(entity, seed):
    entity = np.array(entity)
    ts = np.random.default_rng(seed).integers(0, 5, size=len(entity))
    order, separated = separate_equal_times(entity, ts)
    assert sorted(order.tolist()) == list(range(len(entity)))
    pairs = list(zip(entity[order].tolist(), separated.tolist(), strict=True))
    assert len(set(pairs)) == len(pairs)
    assert (separated >= ts[order]).all() and (np.diff(separated) >= 0).all()


@settings(max_examples=50, deadline=None)
@given(
    country=st.lists(st.integers(0, 11), min_size=1, max_size=30),
    seed=st.integers(0, 2**32 - 1),
)
def test_merchant_picker_matches_a_brute_force_walk(country, seed):
    rng = np.random.default_rng(seed)
    country = np.array(country)
    weight = rng.uniform(0.01, 1.0, size=len(country))
    wanted = rng.choice(np.unique(country), size=20)
    u = rng.random(20)
    picked = MerchantPicker(country, weight).pick(wanted, u)
    for k, draw, merchant in zip(wanted, u, picked, strict=True):
        members = np.flatnonzero(country == k)
        share = np.cumsum(weight[members]) / weight[members].sum()
        position = min(np.searchsorted(share, draw, side="right"), len(members) - 1)
        assert merchant == members[position]
