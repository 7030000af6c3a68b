"""The feature registry: built from dbt's manifest.json, versioned on disk, read by everything else.

Reads `target/manifest.json` (and the Delta tables' schemas for column types); writes registry
versions under the registry folder. `registry_sync.model` is the data model.
"""
