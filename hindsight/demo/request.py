"""The demo's example request: whoever transacted last in the offline store, and the demo's API key."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.compute as pc

from hindsight.offline_store.tables import open_table
from hindsight.registry_sync import load_registry

if TYPE_CHECKING:
    from hindsight.core.settings import Settings


#: Where `make demo` saves the key it creates (`hindsight keys create ... --save`), in the state folder.
DEMO_KEY_FILE = "demo_api_key"


def demo_key(state_dir: Path) -> str | None:
    """The key `make demo` saved in the state folder, or None if there is none."""
    try:
        return (state_dir / DEMO_KEY_FILE).read_text().strip() or None
    except FileNotFoundError:
        return None


def newest_entities(settings: Settings | None = None, view: str = "user_transaction_aggregates") -> dict[str, Any]:
    """The join keys of the newest row of `view`, plus a merchant that has risk features."""
    registry = load_registry(settings)
    entities = _newest_row_keys(registry.view(view))
    merchant_view = next((v for v in registry.feature_views if v.join_keys == ("merchant_id",) and v.online), None)
    if merchant_view is not None:
        entities.update(_newest_row_keys(merchant_view))
    return entities


def _newest_row_keys(view) -> dict[str, Any]:
    table = open_table(view.delta_uri).to_pyarrow_dataset().to_table(columns=[*view.join_keys, view.timestamp_field])
    newest = pc.index(table[view.timestamp_field], pc.max(table[view.timestamp_field])).as_py()
    return {key: table[key][newest].as_py() for key in view.join_keys}
