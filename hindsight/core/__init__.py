"""The leaf every component imports: project settings, durations, background processes.

Nothing here imports another Hindsight package; `offline_store`, `registry_sync`, `training_sets`,
`online_sync`, `serving` and the CLI all build on it.
"""
