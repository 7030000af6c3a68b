"""The one error type of training sets: bad input, named before any query runs."""

from __future__ import annotations

from collections.abc import Iterable

from hindsight.core.suggest import closest


class TrainingSetError(ValueError):
    """A training-set request cannot be answered; the message names the problem and the fix."""


def near_names(name: str, candidates: Iterable[str]) -> str:
    """A ' (did you mean ...?)' hint, or a list of what exists when nothing is close.

    >>> near_names("user_profil", ["user_profile", "merchant_events"])
    " (did you mean 'user_profile'?)"
    """
    options = sorted(set(candidates))
    close = closest(name, options)
    if close:
        return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
    if not options:
        return " (there are none)"
    shown = ", ".join(options[:20]) + (", ..." if len(options) > 20 else "")
    return f" (known: {shown})"
