"""Durations as feature views write them in dbt config: '30d', '12h', '90m', '45s', '2w', '1d12h'.

The grammar: ASCII digits, then one of w d h m s, repeated; case and surrounding spaces ignored.
dbt applies it in Jinja (macros/utils/parse_duration.sql) when it builds a view; the registry applies
it here when it reads the manifest. tests/cases/durations.yml holds the cases both must agree on
(tests/unit/test_conformance.py, tests/integration/test_conformance_jinja.py).
"""

from __future__ import annotations

import datetime as dt
import re

_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
# [0-9], not \d: \d also matches other scripts' digits, which the Jinja side (and dbt users) do not.
_PART = re.compile(r"([0-9]+)([wdhms])")
_WHOLE = re.compile(r"(?:[0-9]+[wdhms])+")


def parse_duration(text: str) -> dt.timedelta:
    """Parse a compact duration.

    >>> parse_duration("30d")
    datetime.timedelta(days=30)
    >>> parse_duration("1d12h")
    datetime.timedelta(days=1, seconds=43200)

    Raises:
        ValueError: naming the text and the accepted form.
    """
    cleaned = str(text).strip().lower()
    if not _WHOLE.fullmatch(cleaned):
        raise ValueError(
            f"cannot parse duration {text!r}: expected a number and a unit (w, d, h, m, s), "
            "like '30d', '12h' or '1d12h'"
        )
    return dt.timedelta(seconds=sum(int(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(cleaned)))


def format_duration(delta: dt.timedelta) -> str:
    """The compact form of a duration, largest units first.

    >>> format_duration(dt.timedelta(days=1, hours=12))
    '1d12h'
    """
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in _UNIT_SECONDS.items():
        if unit == "w" and seconds % size:
            continue
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
