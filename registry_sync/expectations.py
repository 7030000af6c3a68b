"""A feature view's data quality expectations, read from `config.meta.hindsight.expectations` of its model.

Declared in the model's .yml, beside its columns, with Great Expectations' names and arguments:

    config:
      meta:
        hindsight:
          expectations:
            - expect_column_values_to_not_be_null: {column: user_id}
            - expect_column_values_to_be_between: {column: credit_limit, min_value: 0, max_value: 100000}

Each entry is checked here, when the registry is built: the name must be one of Great
Expectations' expectations (the error lists them, nearest first), the arguments must be ones it
takes (Great Expectations' own model says so), and a column argument must name a column of the
Delta table. Great Expectations is imported only when a view declares expectations, always
through `import_gx()`, which turns its analytics off first (`hindsight.quality.gx` runs the suites).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import cache
from typing import Any

from hindsight.core.suggest import closest
from hindsight.registry_sync.model import Expectation

#: Arguments that name one column, or several.
COLUMN_ARGUMENTS = ("column", "column_A", "column_B")
COLUMN_LIST_ARGUMENTS = ("column_list", "column_set")

_FORM = "a list of {expectation_name: {argument: value, ...}}"


def expectations_of(config: dict[str, Any], columns: Sequence[str], where: str, problems: list[str]) -> tuple[Expectation, ...]:
    """The view's declared expectations; each problem is appended to `problems` (naming `where`)."""
    declared = ((config.get("meta") or {}).get("hindsight") or {})
    if not isinstance(declared, dict):
        return ()
    listed = declared.get("expectations")
    if listed is None:
        return ()
    where = f"{where}: meta.hindsight.expectations"
    if not isinstance(listed, list):
        problems.append(f"{where} must be {_FORM}; got {listed!r}")
        return ()
    found = []
    for position, item in enumerate(listed, start=1):
        entry = f"{where} entry {position}"
        if not isinstance(item, dict) or len(item) != 1:
            problems.append(f"{entry} must be one mapping {{expectation_name: {{arguments}}}}; got {item!r}")
            continue
        ((name, arguments),) = item.items()
        arguments = {} if arguments is None else arguments
        if not isinstance(arguments, dict):
            problems.append(f"{entry} ({name}): the arguments must be a mapping like {{column: user_id}}; got {arguments!r}")
            continue
        expectation = Expectation(type=str(name), kwargs=dict(arguments))
        if _check(expectation, columns, entry, problems):
            found.append(expectation)
    return tuple(found)


def _check(expectation: Expectation, columns: Sequence[str], entry: str, problems: list[str]) -> bool:
    names = expectation_names()
    if expectation.type not in names:
        near = closest(expectation.type, names)
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        problems.append(
            f"{entry}: {expectation.type} is not a Great Expectations expectation{hint}; "
            f"Great Expectations has: {', '.join(names)}"
        )
        return False
    ok = True
    for argument in COLUMN_ARGUMENTS + COLUMN_LIST_ARGUMENTS:
        value = expectation.kwargs.get(argument)
        named = value if isinstance(value, list) else [value] if value is not None else []
        for column in named:
            if column not in columns:
                near = closest(str(column), columns)
                hint = f" (did you mean {', '.join(near)}?)" if near else ""
                problems.append(f"{entry} ({expectation.type}): {argument} {column} is not a column of the view{hint}")
                ok = False
    try:
        build(expectation)
    except ValueError as error:
        problems.append(f"{entry} ({expectation.type}): {error}")
        ok = False
    return ok


def import_gx() -> Any:
    """The `great_expectations` module, imported with analytics off and its chatty loggers quiet.

    GX_ANALYTICS_ENABLED is read by Great Expectations when it starts; it is forced off here (a
    user's environment cannot turn it back on through Hindsight).
    """
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    # Set before the import, which already logs at INFO.
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    import great_expectations as gx

    return gx


@cache
def expectation_names() -> tuple[str, ...]:
    """Every expectation Great Expectations ships, by snake-case name, sorted."""
    import_gx()
    from great_expectations.expectations.registry import list_registered_expectation_implementations, register_core_expectations

    register_core_expectations()
    return tuple(sorted(list_registered_expectation_implementations()))


def build(declared: Expectation) -> Any:
    """The Great Expectations expectation object.

    Raises:
        ValueError: one line per bad argument ("argument max_value: value is not a valid float").
    """
    import_gx()
    from great_expectations.expectations.registry import get_expectation_impl

    implementation = get_expectation_impl(declared.type)
    try:
        return implementation(**declared.kwargs)
    except (TypeError, ValueError) as error:  # pydantic's ValidationError is a ValueError
        raise ValueError(_argument_errors(error)) from None


def _argument_errors(error: Exception) -> str:
    errors = getattr(error, "errors", None)
    if not callable(errors):
        return str(error)
    # A union-typed argument fails once per member type ("not a valid float", "not a valid dict",
    # ...): the first says enough.
    first: dict[str, str] = {}
    for item in errors():
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "__root__")
        message = "is not an argument it takes" if item.get("type") == "value_error.extra" else item.get("msg", "")
        first.setdefault(where, f"argument {where}: {message}" if where else str(message))
    return "; ".join(first.values())
