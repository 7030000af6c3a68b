"""Deterministic raw demo data for a card-fraud domain: the input of the dbt source `raw`.

Owns the public API of the generator (the simulation itself lives in `hindsight.demo`). Reads only
its arguments; writes `<raw_dir>/{users,merchants,transactions,user_updates}/part-*.parquet` and
`<raw_dir>/_demo_data.json`. The same arguments always give byte-identical files.

Every event time lies in the 180 days before `end` (midnight UTC). Transactions and user updates
carry `loaded_at`, when they reached the warehouse; `loaded_before` / `loaded_from` write only the
rows loaded in a range, which is how tests simulate new raw rows arriving:

    generate(raw, end=day, loaded_before=t)   # everything loaded before t
    generate(raw, end=day, loaded_from=t)     # append the rest as new part files
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from hindsight.demo.domain import DEFAULT_SEED, SCALES, Scale
from hindsight.demo.entities import make_merchants, make_users, merchants_table, users_table
from hindsight.demo.profiles import make_profiles
from hindsight.demo.raw_files import (
    MANIFEST_NAME,
    SCHEMAS,
    LoadedRange,
    clear_parts,
    next_part_path,
    part_paths,
    read_manifest,
    write_manifest,
    write_part,
)
from hindsight.demo.transactions import transaction_batches
from hindsight.demo.window import Window, to_us
from hindsight.core.settings import Settings

__all__ = [
    "DEFAULT_SEED",
    "SCALES",
    "DemoDataError",
    "WrittenPart",
    "generate",
    "parse_timestamp",
    "write_demo_data",
]

TABLES = tuple(SCHEMAS)


class DemoDataError(ValueError):
    """Arguments the generator cannot honour; the message names the problem."""


@dataclass(frozen=True)
class WrittenPart:
    """What one call wrote for one table."""

    table: str
    rows: int
    #: The part file written, or None for a table left alone (appends skip users, merchants).
    path: Path | None


def parse_timestamp(value: str | dt.datetime) -> dt.datetime:
    """An aware UTC datetime from ISO text or a datetime; naive means UTC.

    >>> parse_timestamp("2026-03-01")
    datetime.datetime(2026, 3, 1, 0, 0, tzinfo=datetime.timezone.utc)
    >>> parse_timestamp("2026-03-01T12:30:00+02:00")
    datetime.datetime(2026, 3, 1, 10, 30, tzinfo=datetime.timezone.utc)

    Raises:
        DemoDataError: naming the text and the accepted form.
    """
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise DemoDataError(
                f"cannot parse timestamp {value!r}: expected ISO 8601, like '2026-03-01' or "
                "'2026-03-01T12:30:00Z' (no offset means UTC)"
            ) from None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def write_demo_data(
    out_dir: str | Path | None = None,
    scale: str = "small",
    end: dt.date | str | None = None,
    seed: int = DEFAULT_SEED,
    loaded_before: dt.datetime | str | None = None,
    loaded_from: dt.datetime | str | None = None,
) -> list[WrittenPart]:
    """Generate the demo world and write its raw tables; see `generate` for the arguments.

    Returns:
        One WrittenPart per table, in the order users, merchants, transactions, user_updates.
    """
    raw_dir = Path(out_dir) if out_dir is not None else Settings.from_env().raw_data_dir
    window = Window(_end_date(end))
    loaded = _loaded_range(loaded_before, loaded_from)
    _check_scale_and_seed(scale, seed)
    manifest = {"scale": scale, "seed": seed, "end": window.end.isoformat()}
    appending = loaded.from_us is not None
    if appending:
        _check_append(raw_dir, manifest, loaded)
    else:
        (raw_dir / MANIFEST_NAME).unlink(missing_ok=True)
        for table in TABLES:
            clear_parts(raw_dir / table)

    parts = _write_tables(raw_dir, SCALES[scale], window, seed, loaded, appending)
    write_manifest(raw_dir, {**manifest, "loaded_until": _iso_or_none(loaded.before_us)})
    return parts


def generate(
    out_dir: str | Path | None = None,
    scale: str = "small",
    end: dt.date | str | None = None,
    seed: int = DEFAULT_SEED,
    loaded_before: dt.datetime | str | None = None,
    loaded_from: dt.datetime | str | None = None,
) -> dict[str, int]:
    """Generate the demo world and write its raw tables as Parquet.

    Args:
        out_dir: The raw data folder; default `Settings.from_env().raw_data_dir` (data/raw).
        scale: 'small' (~1k users, ~30k transactions) or 'medium' (~200k users, ~10M transactions).
        end: Events cover the 180 days before this date at 00:00 UTC; default today (UTC).
        seed: Seeds every random draw; same arguments, byte-identical files.
        loaded_before: Write only transactions and user updates loaded before this time.
            Without `loaded_from`, this is a fresh write that replaces the tables.
        loaded_from: Append, as a new part file per table, the transactions and user updates
            loaded at or after this time (and before `loaded_before`, if given). Users and
            merchants are left alone. Must continue exactly where the previous write stopped.

    Returns:
        Rows written per table (0 for the tables an append leaves alone).

    Raises:
        DemoDataError: bad arguments, or an append that does not continue the data on disk.
    """
    parts = write_demo_data(out_dir, scale, end, seed, loaded_before, loaded_from)
    return {part.table: part.rows for part in parts}


def _write_tables(
    raw_dir: Path, scale: Scale, window: Window, seed: int, loaded: LoadedRange, appending: bool
) -> list[WrittenPart]:
    users = make_users(scale, window, seed)
    merchants = make_merchants(scale, window, seed)
    profile_table, residence = make_profiles(users, window, seed)
    batches = {
        "users": lambda: [users_table(users)],
        "merchants": lambda: [merchants_table(merchants)],
        "transactions": lambda: (
            loaded.keep(day)
            for day in transaction_batches(users, merchants, residence, window, scale, seed)
        ),
        "user_updates": lambda: [loaded.keep(profile_table)],
    }
    parts = []
    for table in ("users", "merchants", "transactions", "user_updates"):
        if appending and table in ("users", "merchants"):
            parts.append(WrittenPart(table, 0, None))
            continue
        path = next_part_path(raw_dir / table)
        rows = write_part(path, SCHEMAS[table], batches[table](), scale.row_group_size)
        parts.append(WrittenPart(table, rows, path))
    return parts


def _end_date(end: dt.date | str | None) -> dt.date:
    if end is None:
        return dt.datetime.now(dt.UTC).date()
    if isinstance(end, str):
        try:
            return dt.date.fromisoformat(end.strip())
        except ValueError:
            raise DemoDataError(f"cannot parse end date {end!r}: expected YYYY-MM-DD") from None
    return dt.date(end.year, end.month, end.day)


def _loaded_range(before: dt.datetime | str | None, start: dt.datetime | str | None) -> LoadedRange:
    before_us = None if before is None else to_us(parse_timestamp(before))
    from_us = None if start is None else to_us(parse_timestamp(start))
    if before_us is not None and from_us is not None and from_us >= before_us:
        raise DemoDataError(
            f"--loaded-from ({_iso_or_none(from_us)}) must be earlier than --loaded-before "
            f"({_iso_or_none(before_us)}): the range of rows to append is empty"
        )
    return LoadedRange(from_us=from_us, before_us=before_us)


def _check_scale_and_seed(scale: str, seed: int) -> None:
    if scale not in SCALES:
        raise DemoDataError(f"unknown scale {scale!r}: expected one of {', '.join(SCALES)}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise DemoDataError(f"seed must be a non-negative integer, got {seed!r}")


def _check_append(raw_dir: Path, manifest: dict, loaded: LoadedRange) -> None:
    """An append must continue the same world exactly where the last write stopped."""
    previous = read_manifest(raw_dir)
    if previous is None or not all(part_paths(raw_dir / t) for t in TABLES):
        raise DemoDataError(
            f"nothing to append to in {raw_dir}: write the first rows with --loaded-before first"
        )
    differing = [key for key in manifest if previous.get(key) != manifest[key]]
    if differing:
        was = ", ".join(f"{key}={previous.get(key)}" for key in differing)
        raise DemoDataError(
            f"the raw data in {raw_dir} was generated with {was}: append with the same arguments"
        )
    until = previous.get("loaded_until")
    if until is None:
        raise DemoDataError(
            f"the raw data in {raw_dir} is already complete: there are no rows left to append"
        )
    if until != _iso_or_none(loaded.from_us):
        raise DemoDataError(
            f"the raw data in {raw_dir} holds rows loaded before {until}: append with "
            f"--loaded-from {until}, or rows would be duplicated or missing"
        )


def _iso_or_none(us: int | None) -> str | None:
    if us is None:
        return None
    return (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)).isoformat()
