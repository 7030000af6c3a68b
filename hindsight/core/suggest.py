""""Did you mean ...?": the one place that picks the nearest valid names for an error message."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(name: str, options: Iterable[str], n: int = 3) -> list[str]:
    """The valid names nearest to `name`, best first: difflib's ratio (cutoff 0.6), then names
    containing it (a prefix or fragment such as "fraud" is too short for the ratio but an obvious
    hint).

    >>> closest("onlin", ["online", "ttl", "entities"])
    ['online']
    >>> closest("fraud", ["fraud_detection", "churn"])
    ['fraud_detection']
    """
    text = str(name)
    choices = sorted({str(o) for o in options})
    close = difflib.get_close_matches(text, choices, n=n)
    containing = [o for o in choices if text and text.lower() in o.lower() and o not in close]
    return (close + containing)[:n]


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
