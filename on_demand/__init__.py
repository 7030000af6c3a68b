"""On-demand feature views: Python functions over stored features and request-time values.

Owns the `@on_demand_feature_view` decorator, the `OnDemandView` object, discovery of the views
declared in the project's on-demand folder (`on_demand` of hindsight.yml; the demo's are this
package's `fraud.py`) and their conversion to registry entries. Reads nothing from disk but those
modules; writes nothing: the registry
(`registry_sync`) stores `to_registry(view)`, and training sets and serving import the function
back from the "module:qualname" it records (`from_registry`).

The calling contract (serving and training sets both rely on it):

    view.compute(columns: dict[str, list]) -> dict[str, list]

`columns` holds, for a batch of n rows, one plain Python list of n values per input: every feature
input under its bare feature name (`amount_mean_30d` for "user_transaction_aggregates:
amount_mean_30d") and every request field under its own name; NULL is None (a missing or stale
feature is None, so view functions must cope with None). Extra keys are ignored. It returns one
list of n values per declared output, keyed by output name, after checking names, lengths and
value types against `view.outputs`; any problem raises `OnDemandError` (a ValueError) naming it.
`view.name`, `view.feature_inputs` ("view:feature" tuple), `view.request_fields` and
`view.outputs` (name -> registry dtype) describe it.
"""

from hindsight.on_demand.discovery import (
    PROJECT_PACKAGE,
    from_registry,
    function_path,
    load_views,
    project_folder,
    to_registry,
    use_folder,
)
from hindsight.on_demand.view import OnDemandError, OnDemandView, on_demand_feature_view

__all__ = [
    "PROJECT_PACKAGE",
    "OnDemandError",
    "OnDemandView",
    "from_registry",
    "function_path",
    "load_views",
    "on_demand_feature_view",
    "project_folder",
    "to_registry",
    "use_folder",
]
