"""The portable point-in-time form (Spark, Sail, and DuckDB too): a timeline with running maxima.

Spark SQL has no ASOF join. Per view, feature rows (at the time each became visible: `ts`, or
`greatest(ts, created)` when created times are honoured) and spine rows (at their event time) are
stacked into one timeline per join key, feature rows sorting first at equal times since `<=` is
inclusive. A running MAX(ts) gives each spine row the latest ts visible to it; where the view has a
created time, a second running MAX, of created among rows with exactly that ts, finishes the
greatest `(ts, created)` pair. The feature values come from an equi-join back on (keys, ts,
created). This shape gives identical results on DuckDB, Sail and JVM Spark (tests/integration/
test_training_spark.py compares the first two).
"""

from __future__ import annotations

from sqlglot import exp

from hindsight.training_sets.sql_parts import (
    KNOWN_AT,
    MATCH_CREATED,
    MATCH_TS,
    ROW_CREATED,
    ROW_ID,
    ROW_TS,
    SIDE,
    SpineSpec,
    ViewRequest,
    column,
    created_or_ts,
    keys_equal,
    known_at,
    running_max,
    table,
)

_FEATURE_SIDE, _SPINE_SIDE = 0, 1


def add_view(query: exp.Select, spine: SpineSpec, request: ViewRequest, honor_created: bool) -> exp.Select:
    """Join one view to the spine so that `request.relation` names the matched feature row."""
    view, rel = request.view, request.relation
    has_created = view.created_field is not None
    names = {step: f"{rel}__{step}" for step in ("timeline", "latest", "known", "match")}
    query = query.with_(_quoted(names["timeline"]), as_=_timeline(spine, request, honor_created), copy=False)
    query = query.with_(_quoted(names["latest"]), as_=_latest_ts(request, names["timeline"]), copy=False)
    last = names["latest"]
    if has_created:
        query = query.with_(_quoted(names["known"]), as_=_best_created(request, last), copy=False)
        last = names["known"]
    query = query.with_(_quoted(names["match"]), as_=_spine_matches(last, has_created), copy=False)

    match = names["match"]
    to_match = exp.EQ(this=column(ROW_ID, match), expression=column(spine.row_id, spine.relation))
    query = query.join(table(match), on=to_match, join_type="LEFT", copy=False)
    back = [
        *keys_equal(rel, spine.relation, view.join_keys),
        exp.EQ(this=column(view.timestamp_field, rel), expression=column(MATCH_TS, match)),
    ]
    if has_created:
        back.append(exp.EQ(this=created_or_ts(view, rel), expression=column(MATCH_CREATED, match)))
    return query.join(table(rel), on=exp.and_(*back), join_type="LEFT", copy=False)


def _timeline(spine: SpineSpec, request: ViewRequest, honor_created: bool) -> exp.Union:
    """Feature rows then spine rows, one stream keyed on the view's join keys."""
    view, rel = request.view, request.relation
    has_created = view.created_field is not None
    null = exp.Null()
    features = exp.select(
        *(column(k) for k in view.join_keys),
        exp.alias_(known_at(view, honor_created), KNOWN_AT, quoted=True),
        exp.alias_(exp.Literal.number(_FEATURE_SIDE), SIDE, quoted=True),
        exp.alias_(column(view.timestamp_field), ROW_TS, quoted=True),
        *([exp.alias_(created_or_ts(view), ROW_CREATED, quoted=True)] if has_created else []),
        exp.alias_(null.copy(), ROW_ID, quoted=True),
    ).from_(table(rel))
    events = (
        exp.select(
            *(column(k) for k in view.join_keys),
            column(spine.event_time),
            exp.Literal.number(_SPINE_SIDE),
            null.copy(),
            *([null.copy()] if has_created else []),
            column(spine.row_id),
        )
        .from_(table(spine.relation))
        # A spine row without an event time matches nothing; kept out so it cannot sort anywhere.
        .where(exp.Not(this=exp.Is(this=column(spine.event_time), expression=exp.Null())))
    )
    return exp.union(features, events, distinct=False)


def _latest_ts(request: ViewRequest, timeline: str) -> exp.Select:
    keys = [column(k) for k in request.view.join_keys]
    # ROWS: at equal times feature rows come first (side 0), so each spine row sees exactly the
    # feature rows visible at or before its event time.
    best_ts = running_max(column(ROW_TS), keys, [column(KNOWN_AT), column(SIDE)], "ROWS")
    return exp.select(exp.Star(), exp.alias_(best_ts, MATCH_TS, quoted=True)).from_(table(timeline))


def _best_created(request: ViewRequest, latest: str) -> exp.Select:
    keys = [column(k) for k in request.view.join_keys]
    same_ts = exp.EQ(this=column(ROW_TS), expression=column(MATCH_TS))
    created_of_best = exp.Case(ifs=[exp.If(this=same_ts, true=column(ROW_CREATED))])
    best = running_max(created_of_best, [*keys, column(MATCH_TS)], [column(KNOWN_AT), column(SIDE)], "ROWS")
    return exp.select(
        column(SIDE), column(ROW_ID), column(MATCH_TS), exp.alias_(best, MATCH_CREATED, quoted=True)
    ).from_(table(latest))


def _spine_matches(source: str, has_created: bool) -> exp.Select:
    columns = [column(ROW_ID), column(MATCH_TS), *([column(MATCH_CREATED)] if has_created else [])]
    is_spine = exp.EQ(this=column(SIDE), expression=exp.Literal.number(_SPINE_SIDE))
    return exp.select(*columns).from_(table(source)).where(is_spine)


def _quoted(name: str) -> exp.TableAlias:
    return exp.TableAlias(this=exp.to_identifier(name, quoted=True))
