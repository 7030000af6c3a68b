"""AST pieces both point-in-time formulations share: the spine and view specs, quoted names, windows."""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from hindsight.registry_sync.model import FeatureView

#: Internal column names; a spine may not use the prefix.
INTERNAL_PREFIX = "__hs_"
ROW_ID = "__hs_row"
EVENT_TIME = "__hs_event_time"
KNOWN_AT = "__hs_known_at"
SIDE = "__hs_side"
ROW_TS = "__hs_ts"
ROW_CREATED = "__hs_created"
MATCH_TS = "__hs_match_ts"
MATCH_CREATED = "__hs_match_created"


@dataclass(frozen=True)
class SpineSpec:
    """The spine as the query sees it: a registered relation with a row id and a UTC event time."""

    #: Relation name the engine registered the spine under.
    relation: str = "spine"
    #: Timestamp (UTC) column matched against feature times.
    event_time: str = EVENT_TIME
    #: Column holding 0..n-1 in the caller's order; the output is sorted by it.
    row_id: str = ROW_ID
    #: Spine columns copied to the output, first, in this order.
    columns: tuple[str, ...] = (ROW_ID,)


@dataclass(frozen=True)
class ViewRequest:
    """Features to read from one feature view."""

    view: FeatureView
    #: Relation name the engine registered the view's Delta table under.
    relation: str
    #: (feature column, output column name) pairs, in output order.
    features: tuple[tuple[str, str], ...]


def column(name: str, relation: str | None = None) -> exp.Column:
    """A quoted, optionally qualified column reference."""
    return exp.column(name, table=relation, quoted=True)


def table(name: str) -> exp.Table:
    """A quoted relation reference."""
    return exp.Table(this=exp.to_identifier(name, quoted=True))


def seconds(count: int) -> exp.Interval:
    """An interval of `count` seconds."""
    return exp.Interval(this=exp.Literal.string(str(int(count))), unit=exp.Var(this="SECOND"))


def keys_equal(left: str, right: str, keys: tuple[str, ...]) -> list[exp.Expression]:
    """`left.k = right.k` for every join key."""
    return [exp.EQ(this=column(k, left), expression=column(k, right)) for k in keys]


def created_or_ts(view: FeatureView, relation: str | None = None) -> exp.Expression:
    """The row's created time, its event time when the created time is NULL (known at once)."""
    assert view.created_field is not None
    return exp.Coalesce(
        this=column(view.created_field, relation), expressions=[column(view.timestamp_field, relation)]
    )


def known_at(view: FeatureView, honor_created: bool) -> exp.Expression:
    """When a row became visible: its ts, or the later of ts and created when created is honoured.

    A CASE rather than GREATEST: engines disagree on GREATEST with a NULL argument, and a NULL
    created time must mean "known at ts".
    """
    ts = column(view.timestamp_field)
    if view.created_field is None or not honor_created:
        return ts
    created = column(view.created_field)
    return exp.Case(ifs=[exp.If(this=exp.GT(this=created, expression=ts.copy()), true=created.copy())], default=ts)


def running_max(
    value: exp.Expression, partition: list[exp.Expression], order: list[exp.Expression], frame: str
) -> exp.Window:
    """MAX(value) OVER (PARTITION BY ... ORDER BY ... <frame> BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)."""
    return exp.Window(
        this=exp.Max(this=value),
        partition_by=[p.copy() for p in partition],
        order=exp.Order(expressions=[exp.Ordered(this=o.copy(), nulls_first=False) for o in order]),
        spec=exp.WindowSpec(kind=frame, start="UNBOUNDED", start_side="PRECEDING", end="CURRENT ROW"),
    )
