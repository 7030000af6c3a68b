"""`validated_only=True`: read each view with expectations at its newest Delta version that passed validation.

Views without expectations read their newest version, as they always do (there is nothing to
pass). A version given in `versions=` for a view with expectations must itself have passed.
The versions chosen are recorded in the result like any other (`read_versions`), so a validated
training set replays exactly.
"""

from __future__ import annotations

from collections.abc import Mapping

from deltalake.exceptions import TableNotFoundError

from hindsight.offline_store.tables import open_table
from hindsight.offline_store.uris import absolute_uri
from hindsight.quality.records import ValidationLog
from hindsight.registry_sync.model import FeatureView
from hindsight.training_sets.errors import TrainingSetError


def validated_versions(views: Mapping[str, FeatureView], versions: Mapping[str, int], log: ValidationLog) -> dict[str, int]:
    """`versions` completed with the newest passing version of every view that has expectations.

    Raises:
        TrainingSetError: a view with expectations has no version that passed, or a version pinned
            in `versions` did not pass; the message says which and how to fix it.
    """
    chosen = dict(versions)
    for name, view in views.items():
        if not view.expectations:
            continue
        try:
            table_id = open_table(absolute_uri(view.delta_uri)).metadata().id
        except TableNotFoundError as error:
            raise TrainingSetError(f"view {name!r}: no Delta table at {view.delta_uri!r}; has `dbt run` built it?") from error
        if name in chosen:
            record = log.status(view, table_id, chosen[name])
            if record is None or not record.passed:
                state = "failed validation" if record is not None else "was never validated"
                raise TrainingSetError(
                    f"view {name!r}: versions= pins Delta version {chosen[name]}, which {state}; "
                    "drop it from versions= to read the newest version that passed, or drop validated_only"
                )
            continue
        passed = log.newest_passed(view, table_id)
        if passed is None:
            raise TrainingSetError(
                f"view {name!r}: no Delta version has passed validation with its current expectations; "
                f"run `hindsight validate --select {name}` (or drop validated_only / --validated-only)"
            )
        chosen[name] = passed.delta_version
    return chosen
