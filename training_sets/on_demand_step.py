"""Running on-demand views over a joined training set: Arrow columns in, Arrow columns out."""

from __future__ import annotations

import pyarrow as pa

from hindsight.registry_sync.types import ARROW_TYPES as REGISTRY_ARROW_TYPES
from hindsight.training_sets.plan import OnDemandStep

#: Registry dtype -> the Arrow type an on-demand output column gets (decimals: inferred).
ARROW_TYPES: dict[str, pa.DataType | None] = {**REGISTRY_ARROW_TYPES, "decimal": None}


def run_on_demand(step: OnDemandStep, joined: dict[str, pa.ChunkedArray], spine: pa.Table) -> dict[str, pa.Array]:
    """Compute one on-demand view's requested outputs.

    Args:
        step: the view, where its feature inputs sit in `joined`, and which outputs to keep.
        joined: column name -> values, one per spine row.
        spine: the caller's spine; request fields are its columns of the same name.

    Returns:
        Output column name -> values, for the requested outputs only.
    """
    view = step.view
    inputs = {bare: joined[name].to_pylist() for bare, name in step.inputs.items()}
    inputs.update({field: spine.column(field).to_pylist() for field in view.request_fields})
    outputs = view.compute(inputs)
    return {
        column: pa.array(outputs[feature], type=ARROW_TYPES[view.outputs[feature]])
        for feature, column in step.outputs.items()
    }
