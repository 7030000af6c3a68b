"""Compare feature tables row for row: keys exact, floats within a relative tolerance."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hindsight.offline_store.derived_partition import GRAINS

#: Window sums over different row sets differ in their last bits; the MERGE ignores the same noise.
RELATIVE_TOLERANCE = 1e-9


def sorted_frame(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.drop(columns=list(GRAINS), errors="ignore").sort_values(keys, kind="stable").reset_index(drop=True)


def assert_same_rows(actual: pd.DataFrame, expected: pd.DataFrame, keys: list[str]) -> None:
    actual, expected = sorted_frame(actual, keys), sorted_frame(expected, keys)
    assert list(actual.columns) == list(expected.columns), f"columns differ: {list(actual.columns)} vs {list(expected.columns)}"
    assert len(actual) == len(expected), f"{len(actual)} rows vs {len(expected)} expected"
    pd.testing.assert_frame_equal(actual[keys], expected[keys], check_dtype=False)
    for column in actual.columns.difference(keys):
        a, e = actual[column], expected[column]
        if pd.api.types.is_float_dtype(a) or pd.api.types.is_float_dtype(e):
            a, e = a.to_numpy(dtype=float), e.to_numpy(dtype=float)
            close = np.isclose(a, e, rtol=RELATIVE_TOLERANCE, atol=1e-9, equal_nan=True)
            assert close.all(), f"{column}: {int((~close).sum())} values differ, e.g. row {np.argmin(close)}: {a[~close][:3]} vs {e[~close][:3]}"
        else:
            mismatch = ~((a == e) | (a.isna() & e.isna()))
            assert not mismatch.any(), f"{column}: {int(mismatch.sum())} values differ, e.g. {a[mismatch].head(3).tolist()} vs {e[mismatch].head(3).tolist()}"
