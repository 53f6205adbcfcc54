"""One SQL expression, parsed once into a tree, and every question kpictl asks about it.

Every filter, aggregate and formula of a spec is parsed here with sqlglot in the DuckDB dialect
(docs/architecture.md says why), once per process: `parse` keeps each tree by its text, and
loading a spec parses every expression it holds. Nothing else in kpictl reads SQL text: the
names an expression reads, whether it aggregates, which aggregate and FILTER, the window's
partition and order, the AND terms of a condition and the constructs an expression may not use
are all answered from the tree, and the text polars compiles is generated from the tree
(`ParsedExpression.polars_sql`), so what was checked is what runs.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.errors import SqlglotError
from sqlglot.generators.duckdb import DuckDBGenerator
from sqlglot.tokens import TokenType

MAX_EXPRESSION_CHARS = 10_000
"""The longest expression accepted; the longest in the shipped spec has 122 characters."""

MAX_OPERATORS = 128
"""The most operators (AND, OR, comparisons, arithmetic, …) one expression may have. Polars
builds a chain of operators as a tree as deep as the chain, and parsing, typing and running
it take time quadratic in that depth (1,600 ANDs took 87 s; 20,000 `+` crash the process), so
longer chains are refused before polars sees them. The shipped spec's busiest has 8."""


class ExpressionProblem(Exception):
    """An expression is invalid; the message is written for the user."""


class KpictlSql(DuckDB):
    """DuckDB's SQL as polars reads it: `'…'` strings whose only escape is `''` (a backslash is
    a backslash), names quoted with `"…"` or backticks; generated back as text polars compiles
    to the same expression (`x IS NOT NULL`, not `NOT x IS NULL`; `INTERVAL '7 days'`)."""

    class Tokenizer(DuckDB.Tokenizer):
        IDENTIFIERS: ClassVar[list[str | tuple[str, str]]] = ['"', "`"]
        STRING_ESCAPES: ClassVar[list[str]] = ["'"]

    class Generator(DuckDBGenerator):
        def not_sql(self, expression: exp.Not) -> str:
            inner = expression.this
            if isinstance(inner, exp.Is) and isinstance(inner.expression, exp.Null):
                return f"{self.sql(inner, 'this')} IS NOT NULL"
            if isinstance(inner, exp.In | exp.Like | exp.ILike | exp.Between):
                text = self.sql(inner)
                head = self.sql(inner, "this")
                return f"{head} NOT {text[len(head) + 1 :]}"
            return super().not_sql(expression)

        def interval_sql(self, expression: exp.Interval) -> str:
            this, unit = expression.this, expression.unit
            if isinstance(this, exp.Literal) and this.is_string and unit is not None:
                return f"INTERVAL '{this.name} {unit.name.lower()}'"
            return super().interval_sql(expression)


_DIALECT = KpictlSql()


@dataclass(frozen=True, eq=False)
class ParsedExpression:
    """One expression: its text as written, its tree, and the text polars compiles."""

    sql: str
    tree: exp.Expr
    polars_sql: str


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------

_WALL_CLOCK_MESSAGE = (
    "the wall clock is not allowed (results must be reproducible): use the built-in "
    "column as_of (set with --as-of; default: the latest timestamp in the data)"
)
_CLOCK_NAMES = frozenset(
    {
        "now",
        "current_timestamp",
        "current_date",
        "current_time",
        "localtimestamp",
        "localtime",
        "getdate",
        "sysdate",
        "systimestamp",
        "today",
        "unix_timestamp",
    }
)
_CLOCK_NODES = (
    exp.CurrentTimestamp,
    exp.CurrentDate,
    exp.CurrentTime,
    exp.CurrentDatetime,
    exp.Localtimestamp,
    exp.Localtime,
    exp.UnixSeconds,
)
_RANDOM_NAMES = frozenset(
    {"random", "rand", "uuid", "gen_random_uuid", "random_uuid", "shuffle", "sample"}
)
_RANDOM_NODES = (exp.Rand, exp.Uuid)
# Operators as the tree holds them (`a BETWEEN b AND c` and `CASE WHEN` count once each).
_OPERATOR_NODES = (
    exp.Binary,
    exp.Not,
    exp.Neg,
    exp.In,
    exp.Between,
    exp.If,
)


@functools.lru_cache(maxsize=4096)
def parse(sql: str) -> ParsedExpression:
    """The tree of one SQL expression, checked for what an expression may not contain.

    Parsed once per text and kept: later questions about the same text reuse the tree.
    Raises ExpressionProblem (too long, too many operators, not one valid expression, the wall
    clock, random or file-reading functions, a subquery, templating)."""
    if not isinstance(sql, str) or not sql.strip():
        raise ExpressionProblem("must be a non-empty SQL expression (a string)")
    if len(sql) > MAX_EXPRESSION_CHARS:
        raise ExpressionProblem(
            f"is {len(sql):,} characters long, more than the {MAX_EXPRESSION_CHARS:,} an "
            "expression may have; split it into named columns of a table"
        )
    try:
        tokens = _DIALECT.tokenize(sql)
    except SqlglotError as exc:
        raise ExpressionProblem(f"not a valid SQL expression: {_first_line(exc)}") from exc
    kinds = {token.token_type for token in tokens}
    if TokenType.L_BRACE in kinds:
        raise ExpressionProblem(
            "templating is not supported: params are columns, write the param's name directly"
        )
    if TokenType.SEMICOLON in kinds:
        raise ExpressionProblem("one expression only: remove the ';'")
    try:
        trees = _DIALECT.parser().parse(tokens, sql)
    except SqlglotError as exc:
        raise ExpressionProblem(f"not a valid SQL expression: {_first_line(exc)}") from exc
    except RecursionError as exc:
        raise ExpressionProblem("is nested too deeply; split it into named columns") from exc
    if len(trees) != 1 or trees[0] is None:
        raise ExpressionProblem("one expression only: remove the ';'")
    tree = trees[0]
    operators = sum(1 for node in tree.walk() if isinstance(node, _OPERATOR_NODES))
    if operators > MAX_OPERATORS:
        raise ExpressionProblem(
            f"has {operators:,} operators, more than the {MAX_OPERATORS} an expression may "
            "have (polars slows down with the square of a chain's length); split it into "
            "named columns of a table"
        )
    problem = forbidden(tree)
    if problem is not None:
        raise ExpressionProblem(problem)
    return ParsedExpression(sql, tree, generate(tree))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.split("\n", 1)[0].strip() if text else type(exc).__name__


def generate(tree: exp.Expr) -> str:
    """The polars SQL text of a tree (or subtree), comments left out."""
    return _DIALECT.generate(tree, comments=False)


def _function_name(node: exp.Expr) -> str | None:
    """The lower-cased name a function is called by, quoted or not; None for a non-function."""
    if isinstance(node, exp.Anonymous):
        return node.name.lower()
    if isinstance(node, exp.Func):
        return node.sql_name().lower()
    return None


def forbidden(tree: exp.Expr) -> str | None:
    """Why an expression may not run (a subquery, the wall clock, a random or file-reading
    function), or None. Read from the tree: strings, comments and quoted column names are
    not calls."""
    for node in tree.walk():
        if isinstance(node, exp.Query | exp.Subquery):
            return "subqueries are not allowed: an expression sees one row (or one group) at a time"
        if isinstance(node, _CLOCK_NODES):
            return _WALL_CLOCK_MESSAGE
        if isinstance(node, _RANDOM_NODES):
            return "random functions are not allowed (results must be reproducible)"
        name = _function_name(node)
        if name is not None:
            if name in _CLOCK_NAMES:
                return _WALL_CLOCK_MESSAGE
            if name in _RANDOM_NAMES:
                return "random functions are not allowed (results must be reproducible)"
            if name.startswith(("read_", "scan_")):
                return f"reading files is not allowed in an expression ({name}): declare a source"
        if isinstance(node, exp.Column) and not node.this.quoted and node.name in _CLOCK_NAMES:
            return _WALL_CLOCK_MESSAGE  # an unquoted `now` is the function to polars
    return None


# --------------------------------------------------------------------------------------------
# Questions
# --------------------------------------------------------------------------------------------


def names(sql: str) -> tuple[str, ...]:
    """The column names an expression reads, deduplicated, in the order they are written."""
    return _names(parse(sql).tree)


def _names(tree: exp.Expr) -> tuple[str, ...]:
    columns = sorted(_columns(tree), key=_position)
    return tuple(dict.fromkeys(_root_name(c) for c in columns))


def _root_name(column: exp.Column) -> str:
    """The column a name reads: `a` of a struct field `a.b` (as polars reads it)."""
    return column.parts[0].name


def _columns(tree: exp.Expr) -> Iterator[exp.Column]:
    for node in tree.walk():
        if isinstance(node, exp.Column):
            yield node


def _position(node: exp.Column) -> int:
    return int(node.parts[0].meta.get("start", 0))


_TOTAL = "total"


def _is_aggregate_node(node: exp.Expr) -> bool:
    if isinstance(node, exp.AggFunc):
        return True
    return isinstance(node, exp.Anonymous) and node.name.lower() == _TOTAL


def _aggregates_outside_windows(tree: exp.Expr) -> Iterator[exp.Expr]:
    for node in tree.walk(prune=lambda n: isinstance(n, exp.Window)):
        if isinstance(node, exp.Window):
            continue
        if _is_aggregate_node(node):
            yield node


def is_aggregate(sql: str) -> bool:
    """Whether an expression gives one value per group (an aggregate outside any window)."""
    return next(_aggregates_outside_windows(parse(sql).tree), None) is not None


def uses_quantile(sql: str) -> bool:
    """Whether an expression takes a percentile (MEDIAN, QUANTILE_CONT) as an aggregate
    (outside any window): the KPIs `--approx-percentiles` makes approximate."""
    quantiles = exp.Median | exp.PercentileCont | exp.Quantile
    return any(isinstance(n, quantiles) for n in _aggregates_outside_windows(parse(sql).tree))


class AggregateKind(Enum):
    """Which aggregate an expression is (see `aggregate_kind`)."""

    COUNT = "count"
    COUNT_FILTER = "count-filter"
    COUNT_DISTINCT = "count-distinct"
    SUM = "sum"
    TOTAL = "total"
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    QUANTILE = "quantile"
    FIRST_LAST = "first-last"
    OTHER = "other"  # another aggregate function: STDDEV, ARRAY_AGG, MODE, …
    FORMULA = "formula"  # arithmetic or comparisons over aggregates


@dataclass(frozen=True)
class Aggregate:
    """One aggregate call, `FUNCTION(argument) [FILTER (WHERE condition)]`, its parts as
    polars SQL generated from the tree."""

    kind: AggregateKind
    function: str  # COUNT, SUM, TOTAL, AVG, MIN, MAX, MEDIAN, QUANTILE_CONT, FIRST, LAST, …
    argument: str | None  # None for COUNT(*)
    condition: str | None  # the FILTER's condition
    quantile: float | None = None  # MEDIAN: 0.5; QUANTILE_CONT(x, q): q

    def values(self) -> str | None:
        """The row expression the aggregate reads, rows outside its FILTER as null (None for
        COUNT(*))."""
        if self.argument is None or self.condition is None:
            return self.argument
        return f"CASE WHEN {self.condition} THEN {self.argument} END"

    def unfiltered(self) -> str:
        """The same aggregate without FILTER: `FN(CASE WHEN condition THEN argument END)`
        (COUNT(*) counts `CASE WHEN condition THEN 1 END`); both ignore the same rows."""
        argument = self.argument if self.argument is not None else "1"
        inner = (
            argument
            if self.condition is None
            else f"CASE WHEN {self.condition} THEN {argument} END"
        )
        return f"{self.function}({inner})"


@dataclass(frozen=True)
class ComparedAggregate:
    """`aggregate op literal` (`COUNT(*) FILTER (WHERE p) > 0`), or an aggregate alone."""

    aggregate: Aggregate
    comparison: str  # ' > 0' as polars SQL, '' when the aggregate stands alone


_COMPARISONS = (exp.GT, exp.GTE, exp.LT, exp.LTE, exp.EQ, exp.NEQ)


def _unwrap(node: exp.Expr) -> exp.Expr:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _aggregate_of(node: exp.Expr) -> Aggregate | None:
    node = _unwrap(node)
    condition = None
    if isinstance(node, exp.Filter):
        where = node.expression
        condition = generate(where.this if isinstance(where, exp.Where) else where)
        node = _unwrap(node.this)
    if not _is_aggregate_node(node):
        return None
    quantile = None
    if isinstance(node, exp.Anonymous) or not isinstance(node, exp.Func):
        function, arguments = node.name.upper(), list(node.expressions)
    else:
        function = node.sql_name().upper()
        arguments = [a for a in (node.this, node.args.get("expression")) if a is not None]
    if isinstance(node, exp.Count):
        star = isinstance(node.this, exp.Star)
        distinct = isinstance(node.this, exp.Distinct)
        kind = (
            AggregateKind.COUNT_DISTINCT
            if distinct
            else AggregateKind.COUNT_FILTER
            if condition is not None
            else AggregateKind.COUNT
        )
        argument = None if star else generate(node.this)
        return Aggregate(kind, "COUNT", argument, condition)
    if isinstance(node, exp.Median):
        kind, quantile = AggregateKind.QUANTILE, 0.5
    elif isinstance(node, exp.PercentileCont | exp.Quantile):
        kind = AggregateKind.QUANTILE
        fraction = _unwrap(arguments[1]) if len(arguments) > 1 else None
        if isinstance(fraction, exp.Literal) and fraction.is_number:
            quantile = float(fraction.this)
        function = "QUANTILE_CONT"
    else:
        kind = {
            "sum": AggregateKind.SUM,
            "total": AggregateKind.TOTAL,
            "avg": AggregateKind.AVG,
            "min": AggregateKind.MIN,
            "max": AggregateKind.MAX,
            "first": AggregateKind.FIRST_LAST,
            "last": AggregateKind.FIRST_LAST,
        }.get(function.lower(), AggregateKind.OTHER)
    if isinstance(node, exp.First | exp.Last):
        function = "FIRST" if isinstance(node, exp.First) else "LAST"
    if kind is AggregateKind.OTHER or not arguments:
        return Aggregate(kind, function, generate(node) if not arguments else None, condition)
    if any(isinstance(a, exp.Distinct) for a in arguments):
        return Aggregate(AggregateKind.OTHER, function, None, condition)
    return Aggregate(kind, function, generate(arguments[0]), condition, quantile)


def aggregate(sql: str) -> Aggregate | None:
    """The aggregate the whole expression is (`AVG(x)`, `COUNT(*) FILTER (WHERE p)`, …), or
    None (row-level, several aggregates, arithmetic around one)."""
    return _aggregate_of(parse(sql).tree)


def compared_aggregate(sql: str) -> ComparedAggregate | None:
    """The aggregate of `AGG(…) [FILTER (…)] [op literal]`, with the comparison; else None."""
    tree = _unwrap(parse(sql).tree)
    found = _aggregate_of(tree)
    if found is not None:
        return ComparedAggregate(found, "")
    if isinstance(tree, _COMPARISONS):
        right = _unwrap(tree.expression)
        literal = isinstance(right, exp.Literal | exp.Boolean) or (
            isinstance(right, exp.Neg) and isinstance(right.this, exp.Literal)
        )
        found = _aggregate_of(tree.this)
        if found is not None and literal:
            op = generate(tree)[len(generate(tree.this)) :]
            return ComparedAggregate(found, op)
    return None


def aggregate_kind(sql: str) -> AggregateKind | None:
    """Which aggregate an expression is: count (COUNT(*) or COUNT(x)), count-filter (with
    FILTER), count-distinct, sum, total, avg, min, max, quantile (MEDIAN, QUANTILE_CONT),
    first-last, other (another aggregate function), formula (arithmetic or comparisons over
    aggregates); None for a row-level expression."""
    found = aggregate(sql)
    if found is not None:
        return found.kind
    return AggregateKind.FORMULA if is_aggregate(sql) else None


def filter_condition(sql: str) -> str | None:
    """The condition of the aggregate's FILTER (WHERE …), as polars SQL; None without one."""
    found = aggregate(sql)
    return found.condition if found is not None else None


def conjuncts(sql: str) -> tuple[str, ...]:
    """The top-level AND terms of a condition, as polars SQL (`a = 1 AND\\n b = 2` is two;
    a BETWEEN's AND and an AND inside parentheses or a function are not split)."""
    terms: list[exp.Expr] = []
    pending = [parse(sql).tree]
    while pending:
        node = pending.pop()
        if isinstance(node, exp.And):
            pending.extend((node.expression, node.this))  # popped left first
        else:
            terms.append(node)
    return tuple(generate(t) for t in terms)


@dataclass(frozen=True)
class WindowOrder:
    """One ORDER BY term of a window."""

    term: str  # polars SQL
    column: str | None  # the column's name when the term is a plain column
    descending: bool
    nulls_first: bool


@dataclass(frozen=True)
class Window:
    """`FUNCTION(argument[, offset[, default]]) OVER (PARTITION BY … ORDER BY …)`."""

    function: str  # LEAD, LAG, MAX, ROW_NUMBER, …
    argument: str | None
    offset: int | None  # LEAD/LAG's literal offset (1 when not written); else None
    has_default: bool  # LEAD/LAG with a third argument
    partition: tuple[str, ...]  # polars SQL of each PARTITION BY term
    partition_columns: tuple[str, ...] | None  # their names when every term is a column
    order: tuple[WindowOrder, ...]


def _column_name(node: exp.Expr) -> str | None:
    node = _unwrap(node)
    return node.name if isinstance(node, exp.Column) and not node.table else None


def window(sql: str) -> Window | None:
    """The window function the whole expression is, or None."""
    tree = _unwrap(parse(sql).tree)
    if not isinstance(tree, exp.Window):
        return None
    function = tree.this
    if isinstance(function, exp.Lead | exp.Lag):
        name = "LEAD" if isinstance(function, exp.Lead) else "LAG"
        offset_node = function.args.get("offset")
        offset: int | None = 1
        if offset_node is not None:
            value = _unwrap(offset_node)
            offset = int(value.this) if isinstance(value, exp.Literal) and value.is_int else None
        argument: str | None = generate(function.this)
        has_default = function.args.get("default") is not None
    else:
        name = (_function_name(function) or type(function).__name__).upper()
        argument = generate(function.this) if isinstance(function.this, exp.Expr) else None
        offset, has_default = None, False
    terms = list(tree.args.get("partition_by") or ())
    columns = [_column_name(t) for t in terms]
    order_node = tree.args.get("order")
    order = tuple(
        WindowOrder(
            generate(o.this),
            _column_name(o.this),
            bool(o.args.get("desc")),
            bool(o.args.get("nulls_first")),
        )
        for o in (order_node.expressions if order_node is not None else ())
    )
    return Window(
        name,
        argument,
        offset,
        has_default,
        tuple(generate(t) for t in terms),
        None if None in columns else tuple(c for c in columns if c is not None),
        order,
    )


def uses_row_order(sql: str) -> bool:
    """Whether the expression's value depends on the order of rows (FIRST or LAST)."""
    return parse(sql).tree.find(exp.First, exp.Last) is not None


# --------------------------------------------------------------------------------------------
# Per-unit sums (compare's shapes)
# --------------------------------------------------------------------------------------------

# Aggregates a user recognises by name in "not testable: …"; others are "the aggregate X(…)".
_NAMED_AGGREGATES = frozenset(
    {"MAX", "MIN", "AVG", "MEDIAN", "FIRST", "LAST", "STDDEV", "VARIANCE", "ARRAY_AGG"}
)
_ADDITIVE_KINDS = (
    AggregateKind.COUNT,
    AggregateKind.COUNT_FILTER,
    AggregateKind.SUM,
    AggregateKind.TOTAL,
)


def _split_aggregate(node: exp.Expr) -> tuple[exp.Expr, exp.Expr | None] | None:
    """(aggregate call, FILTER condition or None) of `AGG(…) [FILTER (WHERE …)]`, else None."""
    node = _unwrap(node)
    condition = None
    if isinstance(node, exp.Filter):
        where = node.expression
        condition = where.this if isinstance(where, exp.Where) else where
        node = _unwrap(node.this)
    return (node, condition) if _is_aggregate_node(node) else None


def _label(node: exp.Expr) -> str:
    """How a user names an aggregate or window: `MAX(…)`, `COUNT(DISTINCT …)`, …"""
    if isinstance(node, exp.Window):
        return "a window function (… OVER …)"
    if isinstance(node, exp.Count) and isinstance(node.this, exp.Distinct):
        return "COUNT(DISTINCT …)"
    if isinstance(node, exp.PercentileCont | exp.Quantile):
        return "QUANTILE_CONT(…)"
    name = (_function_name(node) or type(node).__name__).upper()
    return f"{name}(…)" if name in _NAMED_AGGREGATES else f"the aggregate {name}(…)"


def _first_label(node: exp.Expr) -> str:
    """The label of the first aggregate or window in `node` (written order), else ''."""
    for inner in node.walk(bfs=False):
        if isinstance(inner, exp.Window) or _is_aggregate_node(inner):
            return _label(inner)
    return ""


def _row_level(node: exp.Expr) -> bool:
    return not any(
        isinstance(n, exp.Window | exp.Distinct) or _is_aggregate_node(n) for n in node.walk()
    )


def is_row_level(sql: str) -> bool:
    """One value per row: no aggregate, window or DISTINCT anywhere inside."""
    return _row_level(parse(sql).tree)


def _number(node: exp.Expr) -> float | None:
    node = _unwrap(node)
    if isinstance(node, exp.Neg):
        inner = _number(node.this)
        return -inner if inner is not None else None
    if isinstance(node, exp.Literal) and node.is_number:
        return float(node.this)
    return None


def _counts(node: exp.Expr) -> bool:
    """COUNT(*), COUNT(x) or either with FILTER: integer-valued and additive."""
    split = _split_aggregate(node)
    return (
        split is not None
        and isinstance(split[0], exp.Count)
        and not isinstance(split[0].this, exp.Distinct)
        and _additive(node) is None
    )


def _additive(node: exp.Expr) -> str | None:
    node = _unwrap(node)
    split = _split_aggregate(node)
    if split is not None:
        call, condition = split
        found = _aggregate_of(node)
        kind = found.kind if found is not None else AggregateKind.OTHER
        function = (_function_name(call) or "").upper()
        reads = (
            list(call.expressions)
            if isinstance(call, exp.Anonymous)
            else [a for a in call.args.values() if isinstance(a, exp.Expr)]
        )
        if kind in _ADDITIVE_KINDS or function in ("SUM", "TOTAL"):
            inner = [*reads, *([condition] if condition is not None else [])]
            if kind in _ADDITIVE_KINDS and all(_row_level(r) for r in inner):
                return None
            if any(isinstance(r, exp.Distinct) for r in reads):
                return "… DISTINCT … inside SUM/COUNT is not a per-unit sum"
            label = next((_first_label(r) for r in inner if _first_label(r)), "")
            return f"{label or 'a window or DISTINCT'} inside SUM/COUNT is not a per-unit sum"
        return f"{_label(call)} is not a per-unit sum"
    if isinstance(node, exp.Cast):
        inner_reason = _additive(node.this)
        to = node.to
        floating = isinstance(to, exp.DataType) and to.is_type(*exp.DataType.FLOAT_TYPES)
        if inner_reason is not None or floating or _counts(node.this):
            return inner_reason
        return "a cast of a sum to an integer is not a per-unit sum"
    if isinstance(node, exp.Neg):
        return _additive(node.this)
    if isinstance(node, exp.Add | exp.Sub):
        return _additive(node.this) or _additive(node.expression)
    if isinstance(node, exp.Mul | exp.Div) and _number(node.expression) not in (None, 0):
        return _additive(node.this)
    if isinstance(node, exp.Mul) and _number(node.this) is not None:
        return _additive(node.expression)
    if _number(node) is not None:
        return "a constant is not a per-unit sum"
    return f"{_first_label(node) or 'this expression'} is not a per-unit sum"


def additive_reason(sql: str) -> str | None:
    """None when the expression is a per-unit sum — COUNT, SUM or TOTAL of a row-level value
    (each optionally with FILTER), and sums, differences and constant multiples of them — so
    that summing it per unit over the units gives the whole; else why not
    (`COUNT(DISTINCT …) is not a per-unit sum`: two units' distinct values do not add up)."""
    return _additive(parse(sql).tree)


def counts_rows(sql: str) -> bool:
    """COUNT(*) or COUNT(*) FILTER (WHERE p), possibly cast: each row counts 0 or 1."""
    node = _unwrap(parse(sql).tree)
    if isinstance(node, exp.Cast):
        node = _unwrap(node.this)
    found = _aggregate_of(node)
    return (
        found is not None
        and found.kind in (AggregateKind.COUNT, AggregateKind.COUNT_FILTER)
        and found.argument is None
        and (found.condition is None or is_row_level(found.condition))
    )


def ratio_parts(sql: str) -> tuple[str, str] | None:
    """(numerator, denominator) as polars SQL when the whole expression is `a / b`."""
    node = _unwrap(parse(sql).tree)
    if isinstance(node, exp.Div):
        return generate(node.this), generate(node.expression)
    return None


# --------------------------------------------------------------------------------------------
# Columns in particular roles (data checks)
# --------------------------------------------------------------------------------------------

_EQUALITIES = (exp.EQ, exp.NEQ, exp.NullSafeEQ, exp.NullSafeNEQ)


def _string(node: exp.Expr) -> str | None:
    node = _unwrap(node)
    return node.this if isinstance(node, exp.Literal) and node.is_string else None


def _plain_column(node: exp.Expr) -> str | None:
    node = _unwrap(node)
    return node.name if isinstance(node, exp.Column) and not node.table else None


def compared_literals(sql: str) -> tuple[tuple[str, str], ...]:
    """(column, text) for every string literal the expression compares a bare column with
    (`col = 'x'`, `'x' = col`, `col <> 'x'`, `col IN ('x', 'y')`), in the order written."""
    found: dict[tuple[str, str], None] = {}
    try:
        tree = parse(sql).tree
    except ExpressionProblem:
        return ()
    for node in tree.walk(bfs=False):
        if isinstance(node, _EQUALITIES):
            for column, text in (
                (_plain_column(node.this), _string(node.expression)),
                (_plain_column(node.expression), _string(node.this)),
            ):
                if column is not None and text is not None:
                    found.setdefault((column, text), None)
        elif isinstance(node, exp.In) and _plain_column(node.this) is not None:
            column = str(_plain_column(node.this))
            for item in node.expressions:
                text = _string(item)
                if text is not None:
                    found.setdefault((column, text), None)
    return tuple(found)


_SUMMING = ("SUM", "TOTAL", "AVG")


@functools.lru_cache(maxsize=1024)
def summed_columns(sql: str) -> tuple[str, ...]:
    """Columns whose values the expression adds up: read under SUM, TOTAL or AVG (conditions
    — CASE WHEN predicates, FILTER clauses — excluded), in the order written."""
    found: dict[str, None] = {}
    try:
        tree = parse(sql).tree
    except ExpressionProblem:
        return ()  # an expression that does not parse sums nothing
    for node in tree.walk(bfs=False):
        if not _is_aggregate_node(node) or (_function_name(node) or "").upper() not in _SUMMING:
            continue
        for name in _names_outside_conditions(node):
            found.setdefault(name, None)
    return tuple(found)


def _names_outside_conditions(node: exp.Expr) -> list[str]:
    """Columns read in `node` except in a CASE WHEN's condition."""
    conditions = {id(i.this) for i in node.find_all(exp.If)}
    return [
        _root_name(inner)
        for inner in node.walk(bfs=False, prune=lambda n: id(n) in conditions)
        if isinstance(inner, exp.Column) and id(inner) not in conditions
    ]


def picked_column(sql: str) -> str | None:
    """The column whose values an aggregate passes through unchanged — `FIRST(c)`, `LAST(c)`,
    `MIN(c)`, `MAX(c)`, with or without FILTER — else None (COUNT, SUM, arithmetic, …)."""
    try:
        split = _split_aggregate(parse(sql).tree)
    except ExpressionProblem:
        return None
    if split is None or not isinstance(split[0], exp.First | exp.Last | exp.Min | exp.Max):
        return None
    return _plain_column(split[0].this)
