""""Did you mean ...?": the one place that picks the nearest valid names for an error message."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(name: str, options: Iterable[str], n: int = 3) -> list[str]:
    """The valid names nearest to `name`, best first (difflib's ratio, cutoff 0.6).

    >>> closest("onlin", ["online", "ttl", "entities"])
    ['online']
    """
    return difflib.get_close_matches(str(name), sorted({str(o) for o in options}), n=n)


def did_you_mean(name: str, options: Iterable[str], quote: bool = False) -> str:
    """A suffix for an error message: " (did you mean x?)", or "" when nothing is close.

    >>> did_you_mean("fraud_rate_8d", ["fraud_rate_7d", "txn_count_1h"])
    ' (did you mean fraud_rate_7d?)'
    >>> did_you_mean("frad", ["fraud"], quote=True)
    " (did you mean 'fraud'?)"
    >>> did_you_mean("zzz", ["fraud"])
    ''
    """
    close = closest(name, options)
    if not close:
        return ""
    shown = [repr(c) if quote else c for c in close]
    return f" (did you mean {', '.join(shown)}?)"
