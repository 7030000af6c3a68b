"""Data quality: run feature views' Great Expectations on their Delta versions, and gate publishing.

Reads the registry (each view's `expectations`, declared in its model's .yml) and the views' Delta
tables (the change data feed, or every row). Writes the validation log,
`<registry>/validations.jsonl`: one record per view and Delta version, with each expectation's
success and observed value. Online sync (`online_sync.delta_sync`) and training sets
(`validated_only=`) read that log through `gate` and `records`; only `validate` and `gx` import
Great Expectations, and only when a view has expectations.

Modules: `records` (the log), `gate` (may a version be published?), `validate` (which rows, the
record), `gx` (Great Expectations, offline).
"""

from hindsight.quality.gate import PublishRefused, Refusal, check_publish
from hindsight.quality.records import ExpectationResult, ValidationLog, ValidationRecord
from hindsight.quality.validate import ViewValidation, validate

__all__ = [
    "ExpectationResult",
    "PublishRefused",
    "Refusal",
    "ValidationLog",
    "ValidationRecord",
    "ViewValidation",
    "check_publish",
    "validate",
]
