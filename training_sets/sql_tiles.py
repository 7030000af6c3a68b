"""Aggregation views in the point-in-time join: sliding-window values combined from tiles.

An aggregation view's Delta table holds tiles (offline_store/tiles.py): per entity and event time
e, the partial aggregates of the entity's events in [floor(e, i), e]. The value at spine time t over
window w aggregates the events in [floor(t, i) + i - w, t]; with b = floor(t / i) (the bucket
number, intervals aligned to the Unix epoch) and k = w / i, that range is two parts:

- part B, t's own interval up to t: the as-of row of the tiles on (join keys, `_tile_start` =
  floor(t, i)) with as-of time <= t. The as-of machinery of batch views finds it (`sql_asof` on
  DuckDB, `sql_window` elsewhere), the tile start taking the place of one more join key.
- part A, the whole intervals b-k+1 .. b-1: each interval's final tile (its row with the greatest
  as-of time), joined to each distinct (entity, b) of the spine when its bucket lies in
  [b-K+1, b-1] (K the longest frame) and aggregated per (entity, b), each shorter frame through a
  CASE. The range join is an equi-join on (entity, block = bucket / K) against the spine's block and
  the one before, so it reads two longest windows of tiles per entity, however long its history.
  Skipped when every window is one interval (k = 1).

  Why a range join and not sliding window functions (`RANGE BETWEEN k-1 PRECEDING AND 1
  PRECEDING` over final tiles and spine markers): at the medium demo scale (10M tiles, 1M spine
  rows, 19 frame aggregates) DuckDB 1.5 spent more than ten times longer in the windows.

The combination: count = A + B (0 when neither has events); sum NULL when that count is 0; mean =
sum / count; min and max through LEAST / GREATEST, which skip NULLs on DuckDB, Spark and Sail
(checked by tests/integration/test_training_aggregation.py); stddev (sample) from N, S and
M2 = m2_A + m2_B + Q - S^2 / N, Q the sum over tiles of sum^2 / n (clamped at 0, NULL below two
values); last = B's last, else the newest non-null `last` of part A's intervals. Spine rows
without an event time or with a NULL join key match nothing: every feature NULL, count included,
as for batch views.

One CTE (`<relation>__values`, one row per matched spine row) holds a view's features; the main
query LEFT JOINs it on the spine's row id.
"""

from __future__ import annotations

import dataclasses

from sqlglot import exp

from hindsight.offline_store import tiles
from hindsight.registry_sync.model import Aggregation, FeatureView
from hindsight.training_sets.errors import TrainingSetError
from hindsight.training_sets.sql_parts import MATCH_TS, SpineSpec, ViewRequest, column, keys_equal, table

#: The bucket number floor(t / i) of a spine row or a tile.
BUCKET = "__hs_bucket"
#: bucket / the longest frame: part A's range join is an equi-join on it.
BLOCK = "__hs_block"
_MICROS = 1_000_000

#: Parts each function reads in the combination (q: sum^2 / n of a tile, for stddev).
_COMBINED_PARTS = {
    "count": ("n",),
    "sum": ("n", "sum"),
    "mean": ("n", "sum"),
    "min": ("min",),
    "max": ("max",),
    "stddev": ("n", "sum", "m2", "q"),
    "last": ("last",),
}


def aggregations_of(request: ViewRequest) -> list[tuple[Aggregation, str]]:
    """Each requested feature's aggregation with its output column.

    Raises:
        TrainingSetError: a requested feature the view declares no aggregation for, or a window
            that is not a whole number of intervals.
    """
    view = request.view
    by_name = {a.name: a for a in view.aggregations}
    interval = view.aggregation_interval_seconds
    out = []
    for feature, output in request.features:
        if feature not in by_name:
            raise TrainingSetError(f"aggregation view {view.name!r} declares no aggregation for feature {feature!r}")
        aggregation = by_name[feature]
        if aggregation.function not in _COMBINED_PARTS:
            raise TrainingSetError(
                f"view {view.name!r}, feature {feature!r}: unknown function {aggregation.function!r}; "
                f"expected one of {', '.join(tiles.FUNCTIONS)}"
            )
        if not interval or aggregation.window_seconds <= 0 or aggregation.window_seconds % interval:
            raise TrainingSetError(
                f"view {view.name!r}, feature {feature!r}: window of {aggregation.window_seconds} s is not a "
                f"positive multiple of the aggregation interval ({interval} s)"
            )
        out.append((aggregation, output))
    return out


def columns_needed(view: FeatureView, features: list[str]) -> list[str]:
    """The tile columns the features need: keys, as-of time, tile start, then their parts.

    >>> from hindsight.registry_sync.model import Aggregation, Feature, FeatureView
    >>> view = FeatureView("txns", "aggregation", ("user",), ("user_id",), "ts", None, None, False, "/x",
    ...                    (Feature("amount_mean_1d", "float64"),), aggregation_interval_seconds=3600,
    ...                    aggregations=(Aggregation("amount_mean_1d", "mean", "amount", 86400),))
    >>> columns_needed(view, ["amount_mean_1d"])
    ['user_id', 'ts', '_tile_start', 'amount__n', 'amount__sum']
    """
    by_name = {a.name: a for a in view.aggregations}
    functions: dict[str, list[str]] = {}
    for feature in features:
        aggregation = by_name[feature]
        functions.setdefault(aggregation.column, []).append(aggregation.function)
    parts = [part for col, fns in functions.items() for part in tiles.parts_needed(col, fns)]
    return list(dict.fromkeys([*view.join_keys, view.timestamp_field, tiles.TILE_START, *parts]))


def add_view(query: exp.Select, spine: SpineSpec, request: ViewRequest, form: object) -> exp.Select:
    """Join one aggregation view's features to the spine; `values_relation(request)` names them.

    Args:
        query: the main SELECT, FROM the spine.
        spine: the spine relation.
        request: the view (an aggregation view) and its requested features.
        form: the as-of module for part B (`sql_asof` or `sql_window`), with `add_view`.
    """
    view, rel = request.view, request.relation
    wanted = aggregations_of(request)
    interval = int(view.aggregation_interval_seconds or 0)
    names = {step: f"{rel}__{step}" for step in ("spine", "final", "marks", "probes", "windows")}

    query = query.with_(_quoted(names["spine"]), as_=_tile_spine(spine, view, interval), copy=False)
    # Part B: the spine's own interval, as-of t, with the tile start as one more join key.
    tile_view = dataclasses.replace(
        view, join_keys=(*view.join_keys, tiles.TILE_START), created_field=None, ttl_seconds=None
    )
    part_spine = SpineSpec(names["spine"], spine.event_time, spine.row_id, (spine.row_id,))
    values = exp.select(column(spine.row_id, names["spine"])).from_(table(names["spine"]))
    values = form.add_view(values, part_spine, ViewRequest(tile_view, rel, ()), False)  # type: ignore[attr-defined]
    # The as-of forms may add CTEs; they go to the main query, beside this view's.
    for cte in values.args.pop("with_").expressions if values.args.get("with_") else []:
        query = query.with_(_quoted(cte.alias), as_=cte.this, copy=False)

    per_frame = _frame_parts(wanted, interval)
    if per_frame:
        longest = max(per_frame)
        parts = _parts_per_column([p for by_column in per_frame.values() for p in by_column.items()])
        final = _final_tiles(view, rel, parts, interval, longest)
        query = query.with_(_quoted(names["final"]), as_=final, copy=False)
        query = query.with_(_quoted(names["marks"]), as_=_marks(view, names["spine"], longest), copy=False)
        query = query.with_(_quoted(names["probes"]), as_=_probes(view, names["marks"]), copy=False)
        sums = _frame_sums(view, names["final"], names["probes"], per_frame, longest)
        query = query.with_(_quoted(names["windows"]), as_=sums, copy=False)
        on = [*keys_equal(names["windows"], names["spine"], view.join_keys), _same_bucket(names["windows"], names["spine"])]
        values = values.join(table(names["windows"]), on=exp.and_(*on), join_type="LEFT", copy=False)

    combined = [
        exp.alias_(_combine(a, view, rel, names["windows"], a.window_seconds // interval), output, quoted=True)
        for a, output in wanted
    ]
    values = values.select(*combined, copy=False)
    query = query.with_(_quoted(values_relation(request)), as_=values, copy=False)
    to_values = exp.EQ(
        this=column(spine.row_id, values_relation(request)), expression=column(spine.row_id, spine.relation)
    )
    return query.join(table(values_relation(request)), on=to_values, join_type="LEFT", copy=False)


def values_relation(request: ViewRequest) -> str:
    """The CTE holding the view's features, one column per output name."""
    return f"{request.relation}__values"


def projections(request: ViewRequest) -> list[exp.Expression]:
    """The request's output columns, read from its values CTE."""
    rel = values_relation(request)
    return [exp.alias_(column(output, rel), output, quoted=True) for _, output in request.features]


# -- the pieces --------------------------------------------------------------------------------


def bucket_of(time: exp.Expression, interval: int) -> exp.Expression:
    """floor(time / interval) as a BIGINT, from integer microseconds since the epoch.

    Microseconds (EPOCH_US / UNIX_MICROS) rather than seconds: sqlglot renders Spark's
    UNIX_SECONDS for DuckDB as CAST(EPOCH(t) AS BIGINT), which rounds fractional seconds. The
    division is exact in a double while |t| < 2^53 us (year 2255).

    >>> bucket_of(column("t"), 3600).sql("duckdb")
    'CAST(FLOOR(EPOCH_US("t") / 3600000000) AS BIGINT)'
    >>> bucket_of(column("t"), 3600).sql("spark")
    'CAST(FLOOR(UNIX_MICROS(`t`) / 3600000000) AS BIGINT)'
    """
    quotient = exp.Div(this=exp.UnixMicros(this=time), expression=exp.Literal.number(interval * _MICROS))
    return exp.cast(exp.Floor(this=quotient), exp.DataType.build("bigint"))


def _tile_spine(spine: SpineSpec, view: FeatureView, interval: int) -> exp.Select:
    """Spine rows with a time and every key, with their bucket and interval start."""
    bucket = bucket_of(column(spine.event_time), interval)
    start_seconds = exp.Mul(this=bucket.copy(), expression=exp.Literal.number(interval))
    start = exp.UnixToTime(this=start_seconds, scale=exp.UnixToTime.SECONDS)
    present = [
        exp.Not(this=exp.Is(this=column(c), expression=exp.Null())) for c in (spine.event_time, *view.join_keys)
    ]
    return (
        exp.select(
            column(spine.row_id),
            *(column(k) for k in view.join_keys),
            column(spine.event_time),
            exp.alias_(bucket, BUCKET, quoted=True),
            exp.alias_(start, tiles.TILE_START, quoted=True),
        )
        .from_(table(spine.relation))
        .where(exp.and_(*present))
    )


_PART_ORDER = ("n", "sum", "m2", "q", "min", "max", "last")


def _frame_parts(wanted: list[tuple[Aggregation, str]], interval: int) -> dict[int, dict[str, list[str]]]:
    """Frame (intervals per window, > 1) -> input column -> the parts part A sums over it."""
    found: dict[int, dict[str, set[str]]] = {}
    for aggregation, _ in wanted:
        frame = aggregation.window_seconds // interval
        if frame > 1:
            found.setdefault(frame, {}).setdefault(aggregation.column, set()).update(_COMBINED_PARTS[aggregation.function])
    return {
        frame: {col: [p for p in _PART_ORDER if p in parts] for col, parts in by_column.items()}
        for frame, by_column in sorted(found.items())
    }


def _parts_per_column(pairs: list[tuple[str, list[str]]]) -> dict[str, list[str]]:
    """Input column -> every part any frame needs of it, in a fixed order."""
    found: dict[str, set[str]] = {}
    for col, parts in pairs:
        found.setdefault(col, set()).update(parts)
    return {col: [p for p in _PART_ORDER if p in parts] for col, parts in found.items()}


def _part(col: str, part: str, relation: str | None = None) -> exp.Expression:
    """A part of one input column in a tile row; q (sum^2 / n) is derived, in double precision."""
    if part == "q":
        n, total = _part(col, "n", relation), exp.cast(_part(col, "sum", relation), exp.DataType.build("double"))
        square = exp.Div(this=exp.Mul(this=total, expression=total.copy()), expression=n)
        return exp.Case(ifs=[exp.If(this=exp.GT(this=n.copy(), expression=exp.Literal.number(0)), true=square)])
    return column(tiles.part_column(col, part), relation)


def _stacked(col: str, part: str) -> str:
    name = tiles.part_column(col, "n") if part == "n" else f"{col}__{part}"
    return f"__hs_tile__{name}"


def _frame_column(col: str, part: str, frame: int) -> str:
    return f"__hs_a{frame}{_stacked(col, part)[len('__hs_tile'):]}"


def _final_tiles(view: FeatureView, rel: str, parts: dict[str, list[str]], interval: int, longest: int) -> exp.Select:
    """Each interval's final tile (the row with the greatest as-of time per entity and tile start),
    with its bucket and block (bucket / the longest frame)."""
    keys = [column(k) for k in view.join_keys]
    newest = exp.Window(this=exp.Max(this=column(view.timestamp_field)), partition_by=[*keys, column(tiles.TILE_START)])
    latest = exp.select(exp.Star(), exp.alias_(newest, MATCH_TS, quoted=True)).from_(table(rel))
    bucket = bucket_of(column(tiles.TILE_START), interval)
    return (
        exp.select(
            *(k.copy() for k in keys),
            exp.alias_(bucket, BUCKET, quoted=True),
            exp.alias_(_block(bucket.copy(), longest), BLOCK, quoted=True),
            *(exp.alias_(_part(col, p), _stacked(col, p), quoted=True) for col, ps in parts.items() for p in ps),
        )
        .from_(latest.subquery("tiles"))
        .where(exp.EQ(this=column(view.timestamp_field), expression=column(MATCH_TS)))
    )


def _block(bucket: exp.Expression, longest: int) -> exp.Expression:
    return exp.cast(exp.Floor(this=exp.Div(this=bucket, expression=exp.Literal.number(longest))), exp.DataType.build("bigint"))


def _marks(view: FeatureView, spine: str, longest: int) -> exp.Select:
    """Each distinct (entity, bucket) of the spine with its block (bucket / the longest frame)."""
    block = _block(column(BUCKET), longest)
    return (
        exp.select(*(column(k) for k in view.join_keys), column(BUCKET), exp.alias_(block, BLOCK, quoted=True))
        .from_(table(spine))
        .distinct()
    )


def _probes(view: FeatureView, marks: str) -> exp.Union:
    """Each mark once for its block and once for the block before.

    A frame of at most `longest` intervals before bucket b lies in those two blocks, so the range
    join of `_frame_sums` is an equi-join on (entity, block) plus a filter: it touches the entity's
    tiles of two longest windows, however long the entity's history.
    """
    keys = [column(k) for k in view.join_keys]
    before = exp.Sub(this=column(BLOCK), expression=exp.Literal.number(1))
    previous = exp.select(*keys, column(BUCKET), exp.alias_(before, BLOCK, quoted=True)).from_(table(marks))
    return exp.union(exp.select("*").from_(table(marks)), previous, distinct=False)


def _frame_sums(
    view: FeatureView, final: str, probes: str, per_frame: dict[int, dict[str, list[str]]], longest: int
) -> exp.Select:
    """Part A per (entity, bucket) of the spine: each frame's parts over the final tiles before it."""
    p, f = "probe", "tile"
    here, there = column(BUCKET, p), column(BUCKET, f)
    on = [
        *keys_equal(p, f, view.join_keys),
        exp.EQ(this=column(BLOCK, p), expression=column(BLOCK, f)),
        exp.GTE(this=there.copy(), expression=exp.Sub(this=here.copy(), expression=exp.Literal.number(longest - 1))),
        exp.LT(this=there.copy(), expression=here.copy()),
    ]
    sums = []
    for frame, by_column in per_frame.items():
        inside = None if frame == longest else exp.GTE(
            this=there.copy(), expression=exp.Sub(this=here.copy(), expression=exp.Literal.number(frame - 1))
        )
        for col, parts in by_column.items():
            for part in parts:
                value = column(_stacked(col, part), f)
                sums.append(exp.alias_(_frame_aggregate(part, value, there, inside), _frame_column(col, part, frame),
                                       quoted=True))
    keys = [column(k, p) for k in view.join_keys]
    return (
        exp.select(*keys, here.copy(), *sums)
        .from_(exp.Table(this=exp.to_identifier(probes, quoted=True), alias=exp.TableAlias(this=exp.to_identifier(p, quoted=True))))
        .join(
            exp.Table(this=exp.to_identifier(final, quoted=True), alias=exp.TableAlias(this=exp.to_identifier(f, quoted=True))),
            on=exp.and_(*on),
            copy=False,
        )
        .group_by(*(k.copy() for k in keys), here.copy(), copy=False)
    )


def _frame_aggregate(part: str, value: exp.Expression, bucket: exp.Expression, inside: exp.Expression | None) -> exp.Expression:
    """One part aggregated over the frame's tiles: CASE keeps tiles of shorter frames out."""
    if part == "last":
        # The newest interval with a non-null value: MAX_BY / ARG_MAX skip rows whose ordering is NULL.
        present = exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null()))
        when = present if inside is None else exp.and_(inside.copy(), present)
        ordering = exp.Case(ifs=[exp.If(this=when, true=bucket.copy())])
        return exp.ArgMax(this=exp.Case(ifs=[exp.If(this=when.copy(), true=value)]), expression=ordering)
    kept = value if inside is None else exp.Case(ifs=[exp.If(this=inside.copy(), true=value)])
    return {"min": exp.Min, "max": exp.Max}.get(part, exp.Sum)(this=kept)


def _same_bucket(left: str, right: str) -> exp.Expression:
    return exp.EQ(this=column(BUCKET, left), expression=column(BUCKET, right))


# -- the combination ---------------------------------------------------------------------------


def _combine(aggregation: Aggregation, view: FeatureView, rel: str, windows: str, frame: int) -> exp.Expression:
    """The feature's value from part B (the tile row `rel`) and part A (`windows`, when frame > 1)."""
    col, function = aggregation.column, aggregation.function

    def b(part: str) -> exp.Expression:
        return _part(col, part, rel)

    def a(part: str) -> exp.Expression | None:
        return column(_frame_column(col, part, frame), windows) if frame > 1 else None

    def total(part: str, sql_type: str | None = None) -> exp.Expression:
        """A + B of an additive part, NULLs as 0."""
        terms = [x for x in (a(part), b(part)) if x is not None]
        zero = exp.Literal.number(0)
        summed: exp.Expression = exp.Coalesce(this=terms[0], expressions=[zero])
        for term in terms[1:]:
            summed = exp.Add(this=summed, expression=exp.Coalesce(this=term, expressions=[zero.copy()]))
        return exp.cast(summed, exp.DataType.build(sql_type)) if sql_type else summed

    count = total("n", "bigint")
    has_values = exp.GT(this=count, expression=exp.Literal.number(0))
    if function == "count":
        return count
    if function == "sum":
        sum_type = "bigint" if view.feature(aggregation.name).dtype == "int64" else "double"
        return exp.Case(ifs=[exp.If(this=has_values, true=total("sum", sum_type))])
    if function == "mean":
        mean = exp.Div(this=total("sum", "double"), expression=count.copy())
        return exp.Case(ifs=[exp.If(this=has_values, true=mean)])
    if function in ("min", "max"):
        pick = exp.Least if function == "min" else exp.Greatest
        current = a(function)
        # ignore_nulls: without it sqlglot renders NULL-if-any-NULL CASEs around DuckDB's LEAST/GREATEST.
        return b(function) if current is None else pick(this=current, expressions=[b(function)], ignore_nulls=True)
    if function == "last":
        earlier = a("last")
        return b("last") if earlier is None else exp.Coalesce(this=b("last"), expressions=[earlier])
    # stddev: M2 of the union = sum of the tiles' m2 + sum of n * (tile mean - mean)^2 = m2 + Q - S^2/N.
    s = total("sum", "double")
    m2 = exp.Sub(
        this=exp.Add(this=total("m2"), expression=total("q")),
        expression=exp.Div(this=exp.Mul(this=s, expression=s.copy()), expression=count.copy()),
    )
    clamped = exp.Greatest(this=m2, expressions=[exp.Literal.number(0)], ignore_nulls=True)
    # N - 1 kept >= 1 so the division is defined on every row: engines may evaluate SQRT on rows the
    # CASE discards (DuckDB 1.5 raised "square root of a negative number" for N = 0 without it).
    degrees = exp.Greatest(
        this=exp.Sub(this=count.copy(), expression=exp.Literal.number(1)), expressions=[exp.Literal.number(1)], ignore_nulls=True
    )
    variance = exp.Div(this=clamped, expression=degrees)
    enough = exp.GTE(this=count.copy(), expression=exp.Literal.number(2))
    return exp.Case(ifs=[exp.If(this=enough, true=exp.Sqrt(this=variance))])


def _quoted(name: str) -> exp.TableAlias:
    return exp.TableAlias(this=exp.to_identifier(name, quoted=True))
