"""The publish gate: may a feature view's Delta version go online (sync) or into a training set?

A view without expectations always may. A view with expectations may publish version V only when
V's newest validation, run with the view's current expectations, passed; a version never
validated, validated with other expectations, or failed is refused with the reason and the fix.
A validation checks the rows added since the newest version that passed (or every row), so a
passing version vouches for every row the table holds at that version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hindsight.quality.records import ValidationLog, ValidationRecord
from hindsight.registry_sync.model import FeatureView


@dataclass(frozen=True)
class Refusal:
    """Why one view's Delta version may not be published."""

    view: str
    version: int
    #: "failed" | "never_validated"
    reason: str
    record: ValidationRecord | None = None

    def __str__(self) -> str:
        fix_data = f"fix the data and rebuild (`dbt build --select {self.view}`)"
        validate = f"`hindsight validate --select {self.view}`"
        force = "`hindsight sync --force`"
        if self.reason == "never_validated" or self.record is None:
            return (
                f"feature view {self.view}: Delta version {self.version} was never validated with the view's "
                f"current expectations; run {validate} first (or publish it unvalidated with {force})"
            )
        record = self.record
        blocking = [r for r in record.results if r.blocking]
        lines = [
            f"feature view {self.view}: Delta version {self.version} failed validation "
            f"({len(blocking)} of {len(record.results)} expectations failed on {record.rows_checked}, "
            f"validated {record.validated_at}):"
        ]
        lines += [f"  - {r.describe()}" for r in blocking]
        lines.append(
            f"  fix: {fix_data}, then {validate} (add --all-rows if the rebuild replaced the bad rows); "
            f"or publish it anyway with {force}"
        )
        return "\n".join(lines)


class PublishRefused(Exception):
    """Views whose Delta version failed validation or was never validated; nothing of them was published.

    `report` is what the caller did publish meanwhile (online sync's SyncReport), if anything.
    """

    def __init__(self, refusals: list[Refusal], report: Any = None):
        self.refusals = refusals
        self.report = report
        super().__init__("\n".join(str(r) for r in refusals))


def check_publish(view: FeatureView, table_id: str, version: int, log: ValidationLog,
                  same_versions: list[int] | None = None) -> Refusal | None:
    """None when `version` of the view's table may be published, else why not.

    `same_versions`: `version` and the earlier versions that read the same rows, newest first
    (`offline_store.tables.same_rows_versions`); the newest of them that was validated decides, so
    `hindsight optimize` or `vacuum` after `validate` does not lock a view out of sync.
    """
    if not view.expectations:
        return None
    record = next((r for v in same_versions or [version] if (r := log.status(view, table_id, v)) is not None), None)
    if record is None:
        return Refusal(view.name, version, "never_validated")
    if not record.passed:
        return Refusal(view.name, version, "failed", record)
    return None
