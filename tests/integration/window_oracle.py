"""Brute-force window aggregates in numpy: the independent oracle the dbt macros are checked against.

A window of length w ending at t covers events with time in (t - w, t].
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MICROS = {"h": 3_600_000_000, "d": 86_400_000_000}


def window_micros(label: str) -> int:
    return int(label[:-1]) * MICROS[label[-1]]


def _micros(series: pd.Series) -> np.ndarray:
    return series.astype("datetime64[us, UTC]").astype("int64").to_numpy()


def _window_stats(ts: np.ndarray, values: np.ndarray, ends: np.ndarray, width: int) -> dict[str, np.ndarray]:
    """Per end time: count, sum, mean, min, max, stddev of `values` with ts in (end - width, end]."""
    lo = np.searchsorted(ts, ends - width, side="right")
    hi = np.searchsorted(ts, ends, side="right")
    out = {k: np.full(len(ends), np.nan) for k in ("sum", "mean", "min", "max", "stddev")}
    out["count"] = (hi - lo).astype(float)
    for i, (a, b) in enumerate(zip(lo, hi)):
        chunk = values[a:b]
        if len(chunk):
            out["sum"][i] = chunk.sum()
            out["mean"][i] = chunk.mean()
            out["min"][i] = chunk.min()
            out["max"][i] = chunk.max()
            if len(chunk) > 1:
                out["stddev"][i] = chunk.std(ddof=1)
    return out


def user_aggregates(transactions: pd.DataFrame) -> pd.DataFrame:
    """Per-user window aggregates at each transaction (window_aggregates, evaluate='event'): one row per (user, distinct transaction time)."""
    rows = []
    for user_id, events in transactions.sort_values("ts", kind="stable").groupby("user_id", sort=True):
        ts = _micros(events["ts"])
        amounts = events["amount"].to_numpy(dtype=float)
        merchants = events["merchant_id"].to_numpy()
        countries = events["country"].to_numpy()
        ends = np.unique(ts)
        frame = {"user_id": np.full(len(ends), user_id), "event_timestamp": ends}
        for label in ("1h", "1d", "7d", "30d"):
            stats = _window_stats(ts, amounts, ends, window_micros(label))
            frame[f"txn_count_{label}"] = stats["count"]
            for f in ("sum", "mean", "max"):
                frame[f"amount_{f}_{label}"] = stats[f]
            if label in ("7d", "30d"):
                frame[f"amount_min_{label}"] = stats["min"]
                frame[f"amount_stddev_{label}"] = stats["stddev"]
        for label in ("1d", "30d"):
            width = window_micros(label)
            lo = np.searchsorted(ts, ends - width, side="right")
            hi = np.searchsorted(ts, ends, side="right")
            frame[f"merchant_count_distinct_{label}"] = [len(set(merchants[a:b])) for a, b in zip(lo, hi)]
        hi = np.searchsorted(ts, ends, side="right")
        frame["country_last_30d"] = countries[hi - 1]
        rows.append(pd.DataFrame(frame))
    result = pd.concat(rows, ignore_index=True)
    result["event_timestamp"] = pd.to_datetime(result["event_timestamp"], unit="us", utc=True)
    return result
