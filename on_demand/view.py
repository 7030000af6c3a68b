"""The on-demand view object and its decorator: declaration checks and the columnar `compute` call.

One calling convention for every caller (serving on a few rows, training sets on a million): the
function takes one dict of equal-length plain Python lists and returns one, so it needs neither
pandas nor Arrow and costs nothing to call on a handful of rows.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from hindsight.registry_sync.model import FEATURE_TYPES, FeatureRef

Columns = dict[str, list]
ViewFunction = Callable[[Columns], Columns]

# Python types a value of each registry dtype may have. Exact type membership is the fast path
# (`type(True) is bool`, so a bool never passes as an int); subclasses fall back to isinstance.
_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "bool": (bool,),
    "int32": (int,),
    "int64": (int,),
    "float32": (float, int),
    "float64": (float, int),
    "string": (str,),
    "date": (dt.date,),
    "timestamp": (dt.datetime,),
    "decimal": (decimal.Decimal, int),
}


class OnDemandError(ValueError):
    """An on-demand view was declared or called wrongly; the message names the view and the problem."""


@dataclass(frozen=True, eq=False)
class OnDemandView:
    """A Python function over other views' features and request fields, run at read time.

    Build one with `on_demand_feature_view`. `compute` is the checked entry point; calling the
    object directly calls the bare function (handy in a notebook or a unit test).
    """

    name: str
    #: The function: dict of input columns -> dict of output columns.
    function: ViewFunction
    #: Features it reads, as "view:feature", in declaration order.
    feature_inputs: tuple[str, ...]
    #: Values that come with the request (serving) or as spine columns (training): name -> dtype.
    request_fields: dict[str, str]
    #: What it returns: output name -> dtype.
    outputs: dict[str, str]
    description: str = ""
    owner: str = ""
    tags: tuple[str, ...] = ()
    #: Bare feature name -> "view:feature", the keys the function receives for feature inputs.
    input_features: dict[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _check_declaration(self)
        # Own copies, so a caller mutating the dict it passed cannot change a declared view.
        object.__setattr__(self, "request_fields", dict(self.request_fields))
        object.__setattr__(self, "outputs", dict(self.outputs))
        inputs = {FeatureRef.parse(ref).feature: ref for ref in self.feature_inputs}
        object.__setattr__(self, "input_features", inputs)

    @property
    def input_names(self) -> tuple[str, ...]:
        """Every key the function receives: bare feature names, then request field names."""
        return (*self.input_features, *self.request_fields)

    def __call__(self, rows: Columns) -> Columns:
        return self.function(rows)

    def compute(self, columns: Mapping[str, list]) -> Columns:
        """Check the input columns, run the function, check what it returned.

        Args:
            columns: at least every name in `input_names`, each a list of the same length
                (NULL = None). Extra keys are ignored.

        Returns:
            One list per declared output, as long as the inputs.

        Raises:
            OnDemandError: a missing or ragged input, a request value of the wrong type, or an
                output that is missing, undeclared, of the wrong length or of the wrong type.
        """
        inputs = self._checked_inputs(columns)
        length = len(next(iter(inputs.values()))) if inputs else 0
        result = self.function(inputs)
        return self._checked_outputs(result, length)

    def _checked_inputs(self, columns: Mapping[str, list]) -> Columns:
        missing = [n for n in self.input_names if n not in columns]
        if missing:
            raise OnDemandError(f"on-demand view {self.name!r}: missing input column(s) {missing}")
        inputs = {n: columns[n] for n in self.input_names}
        lengths = {n: len(v) for n, v in inputs.items()}
        if len(set(lengths.values())) > 1:
            raise OnDemandError(f"on-demand view {self.name!r}: input columns differ in length: {lengths}")
        for name, dtype in self.request_fields.items():
            _check_values(self.name, "request field", name, dtype, inputs[name])
        return inputs

    def _checked_outputs(self, result: Any, length: int) -> Columns:
        if not isinstance(result, Mapping):
            raise OnDemandError(
                f"on-demand view {self.name!r} returned {type(result).__name__}; "
                "it must return a dict of output name -> list"
            )
        missing = [n for n in self.outputs if n not in result]
        extra = [n for n in result if n not in self.outputs]
        if missing or extra:
            raise OnDemandError(
                f"on-demand view {self.name!r} returned outputs {sorted(result)}; declared {sorted(self.outputs)}"
                + (f"; missing {missing}" if missing else "")
                + (f"; undeclared {extra}" if extra else "")
            )
        for name, dtype in self.outputs.items():
            values = result[name]
            if not isinstance(values, list) or len(values) != length:
                got = f"a list of {len(values)}" if isinstance(values, list) else type(values).__name__
                raise OnDemandError(
                    f"on-demand view {self.name!r}: output {name!r} must be a list of {length} values, got {got}"
                )
            _check_values(self.name, "output", name, dtype, values)
        return {name: result[name] for name in self.outputs}


def on_demand_feature_view(
    *,
    name: str,
    feature_inputs: list[str] | tuple[str, ...] = (),
    request_fields: Mapping[str, str] | None = None,
    outputs: Mapping[str, str],
    description: str = "",
    owner: str = "",
    tags: list[str] | tuple[str, ...] = (),
) -> Callable[[ViewFunction], OnDemandView]:
    """Declare a function as an on-demand feature view.

    The function receives one dict of columns keyed by each feature input's bare feature name and
    each request field's name (plain lists of equal length, NULL = None) and returns a dict keyed
    by output name. Feature inputs are NULL where the entity has no fresh value, so the function
    must return None (or a default) for such rows rather than fail.

    Args:
        name: the view's name, unique among all feature views.
        feature_inputs: "view:feature" references; no two may share a bare feature name.
        request_fields: request-time values: name -> dtype (one of the registry's FEATURE_TYPES).
        outputs: output name -> dtype.
        description: shown in the registry.
        owner: team or person answering for it.
        tags: free labels.

    Returns:
        A decorator that turns the function into an `OnDemandView`.

    Raises:
        OnDemandError: when the declaration is inconsistent (raised at import time).
    """

    def decorate(function: ViewFunction) -> OnDemandView:
        return OnDemandView(
            name=name,
            function=function,
            feature_inputs=tuple(feature_inputs),
            request_fields=dict(request_fields or {}),
            outputs=dict(outputs),
            description=description or (function.__doc__ or "").strip(),
            owner=owner,
            tags=tuple(tags),
        )

    return decorate


def _check_declaration(view: OnDemandView) -> None:
    def fail(problem: str) -> NoReturn:
        raise OnDemandError(f"on-demand view {view.name!r}: {problem}")

    if not view.name or not isinstance(view.name, str):
        raise OnDemandError(f"an on-demand view needs a non-empty name, got {view.name!r}")
    if not callable(view.function):
        fail(f"{view.function!r} is not callable")
    if not view.outputs:
        fail("declares no outputs")
    seen: dict[str, str] = {}
    for ref in view.feature_inputs:
        try:
            bare = FeatureRef.parse(ref).feature
        except ValueError as error:
            fail(f"feature input {error}")
        if bare in seen:
            fail(
                f"feature inputs {seen[bare]!r} and {ref!r} share the name {bare!r}; the function "
                "receives inputs by bare feature name, so they would collide"
            )
        seen[bare] = ref
    for field_name in view.request_fields:
        if field_name in seen:
            fail(f"request field {field_name!r} has the same name as feature input {seen[field_name]!r}")
    for kind, declared in (("request field", view.request_fields), ("output", view.outputs)):
        for field_name, dtype in declared.items():
            if dtype not in FEATURE_TYPES:
                fail(f"{kind} {field_name!r} has type {dtype!r}; expected one of {', '.join(FEATURE_TYPES)}")


def _check_values(view: str, kind: str, name: str, dtype: str, values: list) -> None:
    allowed = _PYTHON_TYPES[dtype]
    for value in values:
        if value is None or type(value) in allowed:
            continue
        if isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed):
            if not (dtype == "date" and isinstance(value, dt.datetime)):
                continue
        raise OnDemandError(
            f"on-demand view {view!r}: {kind} {name!r} is declared {dtype} but holds "
            f"{value!r} ({type(value).__name__})"
        )
