"""Settings of the serving API, read from the environment (and overridable by `create_app`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be a positive integer")
    return value


@dataclass(frozen=True)
class ServingConfig:
    """How the serving API reads, limits and answers."""

    #: Most entity rows one batch request may carry; more is answered 413 (HINDSIGHT_SERVING_MAX_BATCH_ROWS).
    max_batch_rows: int = 100
    #: Most rows one `POST /v1/ingest` or `POST /v1/push` may carry; more is answered 413
    #: (HINDSIGHT_SERVING_MAX_WRITE_ROWS).
    max_write_rows: int = 1000
    #: Largest request body in bytes; more is answered 413 (HINDSIGHT_SERVING_MAX_BODY_BYTES).
    max_body_bytes: int = 1 << 20
    #: Threads per process that run online-store reads, each bounded by its request's deadline
    #: (HINDSIGHT_SERVING_BUDGET_THREADS).
    budget_threads: int = 8
    #: Milliseconds from a request's arrival within which the online store must answer; later is a 503
    #: (HINDSIGHT_SERVING_STORE_DEADLINE_MS). Also the store client's connect and read timeout, with
    #: no retry, so a hung store never holds a thread for longer.
    store_deadline_ms: int = 500
    #: Milliseconds from a `POST /v1/ingest` or `POST /v1/push` request's arrival within which its
    #: DynamoDB writes must commit; later is a 503, the request not acknowledged (retrying it is safe)
    #: (HINDSIGHT_SERVING_WRITE_DEADLINE_MS). Also the write client's connect and read timeout, with
    #: no retry.
    write_deadline_ms: int = 5000
    #: Milliseconds `/readyz` waits for the online store to answer (HINDSIGHT_SERVING_READY_DEADLINE_MS).
    ready_deadline_ms: int = 1000
    #: Milliseconds `hindsight serve` waits for a client's next bytes (request line, headers, body)
    #: or for it to take the response; past that the connection is closed, after a 408 when the body
    #: was being read (HINDSIGHT_SERVING_CLIENT_TIMEOUT_MS). Without it a few stalled clients hold
    #: every request thread.
    client_timeout_ms: int = 5000
    #: A registry JSON file (`Registry.to_dict()`) to serve instead of the latest applied registry
    #: (HINDSIGHT_SERVING_REGISTRY); pins a deployment to one registry version.
    registry_file: str | None = None
    #: How many ad-hoc feature lists keep a cached read plan per process.
    plan_cache_size: int = 256
    #: How often each worker checks the registry folder for a newly applied version, in ms
    #: (HINDSIGHT_SERVING_RELOAD_INTERVAL_MS); a pinned registry file is never reloaded.
    reload_interval_ms: int = 1000
    #: Probability that one answered entity row is logged to `sample_log` (serving.sample_rate of
    #: hindsight.yml, which `hindsight serve` passes in); 0 logs nothing.
    sample_rate: float = 0.0
    #: The served-features Delta table (serving.sample_log); None logs nothing.
    sample_log: str | None = None
    #: Most sampled rows waiting for the writer per process; more are dropped and counted
    #: (HINDSIGHT_SERVING_SAMPLE_QUEUE_ROWS).
    sample_queue_rows: int = 10_000
    #: Most rows per Delta commit of the log (HINDSIGHT_SERVING_SAMPLE_BATCH_ROWS).
    sample_batch_rows: int = 5_000
    #: Longest a sampled row waits before its batch is committed, in ms (HINDSIGHT_SERVING_SAMPLE_FLUSH_MS).
    sample_flush_ms: int = 10_000

    @classmethod
    def from_env(cls) -> ServingConfig:
        return cls(
            max_batch_rows=_env_int("HINDSIGHT_SERVING_MAX_BATCH_ROWS", cls.max_batch_rows),
            max_write_rows=_env_int("HINDSIGHT_SERVING_MAX_WRITE_ROWS", cls.max_write_rows),
            max_body_bytes=_env_int("HINDSIGHT_SERVING_MAX_BODY_BYTES", cls.max_body_bytes),
            budget_threads=_env_int("HINDSIGHT_SERVING_BUDGET_THREADS", cls.budget_threads),
            store_deadline_ms=_env_int("HINDSIGHT_SERVING_STORE_DEADLINE_MS", cls.store_deadline_ms),
            write_deadline_ms=_env_int("HINDSIGHT_SERVING_WRITE_DEADLINE_MS", cls.write_deadline_ms),
            ready_deadline_ms=_env_int("HINDSIGHT_SERVING_READY_DEADLINE_MS", cls.ready_deadline_ms),
            client_timeout_ms=_env_int("HINDSIGHT_SERVING_CLIENT_TIMEOUT_MS", cls.client_timeout_ms),
            registry_file=os.environ.get("HINDSIGHT_SERVING_REGISTRY") or None,
            reload_interval_ms=_env_int("HINDSIGHT_SERVING_RELOAD_INTERVAL_MS", cls.reload_interval_ms),
            sample_queue_rows=_env_int("HINDSIGHT_SERVING_SAMPLE_QUEUE_ROWS", cls.sample_queue_rows),
            sample_batch_rows=_env_int("HINDSIGHT_SERVING_SAMPLE_BATCH_ROWS", cls.sample_batch_rows),
            sample_flush_ms=_env_int("HINDSIGHT_SERVING_SAMPLE_FLUSH_MS", cls.sample_flush_ms),
        )

    def updated(self, overrides: dict[str, Any]) -> ServingConfig:
        """A copy with the fields named (in upper case, Flask style) in `overrides` replaced."""
        names = {f.name.upper(): f.name for f in fields(self)}
        return replace(self, **{names[k]: v for k, v in overrides.items() if k in names})
