"""Property: whatever raw rows arrive between incremental runs (early, late within allowed_lateness,
dated in the future), the Delta tables after the incremental runs equal a full refresh of the same
source at the same time. Real dbt runs on copies of the demo project.

Rows from the future are held back by every mode alike (future_rows='defer'); before that, one such
row moved the watermark and later incremental runs skipped good rows with exit 0.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid

import pyarrow.dataset as ds
import pytest
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

from tests.integration.delta_compare import assert_same_rows
from tests.integration.test_no_silent_loss import append_raw, transaction

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
VIEWS = {
    "user_transaction_aggregates": ["user_id", "event_timestamp"],
    "merchant_risk": ["merchant_id", "event_timestamp"],
    "user_profile": ["user_id", "event_timestamp", "created_timestamp"],
}

#: One arrival: (raw table, kind, how far from its anchor in hours, entity).
arrivals = st.tuples(
    st.sampled_from(["transactions", "user_updates"]),
    st.sampled_from(["early", "late", "future"]),
    st.integers(1, 24 * 20),
    st.integers(1, 40),
)
#: Scenario: one or two steps, each some arrivals followed by an incremental run.
scenarios = st.lists(st.lists(arrivals, min_size=1, max_size=3), min_size=1, max_size=2)


class Arrivals:
    """Writes raw rows relative to the wall clock and to the newest past time already in the source."""

    def __init__(self, project):
        self.project = project
        self.ids = itertools.count(1)
        self.newest_past = {
            "transactions": self._newest("transactions", "ts"),
            "user_updates": self._newest("user_updates", "loaded_at"),
        }

    def _newest(self, table: str, column: str) -> dt.datetime:
        values = ds.dataset(self.project.settings.raw_data_dir / table, format="parquet").to_table(columns=[column])
        return max(values.column(column).to_pylist())

    def when(self, table: str, kind: str, hours: int) -> dt.datetime:
        now = dt.datetime.now(UTC)
        if kind == "future":
            moment = now + dt.timedelta(hours=hours)
        elif kind == "early":
            moment = now - dt.timedelta(hours=1 + hours % 96)
        else:  # late, but within allowed_lateness (3d) of anything the table may have seen
            moment = self.newest_past[table] - dt.timedelta(hours=hours % 48)
        # Odd microseconds keep (entity, time) keys unique across appended and demo rows.
        moment = moment.replace(microsecond=0) + dt.timedelta(microseconds=100_000 + next(self.ids) * 7)
        if moment < now:
            self.newest_past[table] = max(self.newest_past[table], moment)
        return moment

    def add(self, step: list[tuple]) -> None:
        for table, kind, hours, entity in step:
            moment = self.when(table, kind, hours)
            name = uuid.uuid4().hex[:8]
            if table == "transactions":
                row = transaction(10_000_000 + next(self.ids), entity, moment, amount=float(hours))
                row["merchant_id"] = entity
                append_raw(self.project, "transactions", [row], name)
            else:
                append_raw(self.project, "user_updates", [{
                    "user_id": entity, "home_country": "DE", "credit_limit": float(hours), "account_tier": kind,
                    "updated_at": moment - dt.timedelta(hours=hours % 72), "loaded_at": moment}], name)


@settings(max_examples=2, deadline=None, phases=[Phase.explicit, Phase.generate], derandomize=False)
@given(scenario=scenarios)
# The defect itself: a future-dated row, a run, then a good row, and another run.
@example(scenario=[[("transactions", "future", 24 * 10, 7), ("user_updates", "future", 30, 7)],
                   [("transactions", "early", 5, 8), ("user_updates", "early", 5, 8)]])
def test_incremental_runs_end_equal_to_a_full_refresh(demo_project, tmp_path_factory, scenario):
    project = demo_project.copy(tmp_path_factory.mktemp("property") / "project")
    select = ["--select", *VIEWS]
    arrivals = Arrivals(project)
    for step in scenario:
        arrivals.add(step)
        project.dbt("run", *select)
    incremental = {view: project.table(view).to_pandas() for view in VIEWS}
    project.dbt("run", *select, "--full-refresh")
    for view, keys in VIEWS.items():
        assert_same_rows(incremental[view], project.table(view).to_pandas(), keys)
