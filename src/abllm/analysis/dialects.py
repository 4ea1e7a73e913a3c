"""The few SQL pieces that differ between DuckDB, PostgreSQL and ClickHouse.

Everything else in the analysis queries is portable SQL (CASE, GROUP BY, JOIN, CTEs). Values are
inlined as literals rather than bound: identifiers come from validated config (``^[A-Za-z0-9_]``
patterns), strings are quoted here, and floats are written with ``repr`` so they round-trip
exactly; this keeps one SQL text valid on every driver, whatever its placeholder style.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import UTC, datetime

from abllm.analysis.specs import Derived, Value
from abllm.errors import ValidationError


class Dialect(ABC):
    """Portable defaults; subclasses spell what their engine spells differently."""

    name = "generic"
    #: Session settings for analytic queries, sent once (as SELECTs) before an analysis.
    session_setup: tuple[str, ...] = ()

    def lit(self, text: str) -> str:
        """A string literal."""
        return "'" + text.replace("'", "''") + "'"

    def num(self, x: float) -> str:
        """A float literal that reads back as exactly ``x``."""
        return repr(float(x))

    @abstractmethod
    def ts(self, moment: datetime) -> str:
        """A UTC timestamp literal comparable with the ``ts`` column."""

    def value(self, value: Value, alias: str = "e") -> str:
        """SQL for one event's number (NULL when absent)."""
        if value.source == "column":
            return f"{alias}.{value.name}"
        if value.source == "derived":
            return self._derived(Derived(value.name), alias)
        return self.json_number(value.name, alias)

    def _derived(self, derived: Derived, alias: str) -> str:
        errored = (
            f"(CASE WHEN {alias}.error IS NOT NULL AND {alias}.error <> 0 THEN 1.0 ELSE 0.0 END)"
        )
        if derived is Derived.errored:
            return errored
        if derived is Derived.succeeded:
            return f"(1.0 - {errored})"
        return f"(1.0 - {alias}.schema_valid)"

    @abstractmethod
    def json_number(self, key: str, alias: str) -> str:
        """A number (bools as 1/0) from the ``extra`` JSON text column."""

    @abstractmethod
    def epoch_us(self, ts: str) -> str:
        """A timestamp as integer microseconds since the Unix epoch (exact)."""

    def idiv(self, a: str, b: int) -> str:
        """Integer division of non-negative integers."""
        return f"({a} / {b})"

    @abstractmethod
    def last(self, x: str, cond: str, alias: str = "e") -> str:
        """The value of ``x`` on the unit's latest event matching ``cond`` (ties: largest x)."""

    @abstractmethod
    def quantiles(self, x: str, probs: Sequence[float]) -> str:
        """An aggregate returning the R-7 (linear interpolation) quantiles of ``x`` as an array."""

    def item(self, array: str, index: int) -> str:
        """Element ``index`` (1-based) of an array."""
        return f"({array})[{index}]"

    def double(self, x: str) -> str:
        """Cast to double precision."""
        return f"CAST({x} AS DOUBLE)"

    @abstractmethod
    def attr_text(self, key: str, alias: str = "e") -> str:
        """A string from the ``attrs`` JSON text column (NULL or '' when absent)."""

    @abstractmethod
    def split_number(self, text: str, index: int) -> str:
        """Field ``index`` (1-based) of comma-separated ``text`` as a double (NULL if none)."""

    @abstractmethod
    def first_by(self, x: str, key: str) -> str:
        """Aggregate: ``x`` on the row with the smallest ``key`` (``x`` never NULL here)."""

    def var_samp(self, x: str) -> str:
        """Sample variance by a stable streaming update (NULL for fewer than 2 rows).

        DuckDB and PostgreSQL (Youngs–Cramer since 12) update ``var_samp`` without the
        Σx² − (Σx)²/n cancellation (docs/analysis.md, "Variance without cancellation").
        """
        return f"var_samp({x})"

    def covar_samp(self, x: str, y: str) -> str:
        """Sample covariance, stable like :meth:`var_samp`."""
        return f"covar_samp({x}, {y})"


class DuckDBDialect(Dialect):
    """DuckDB: ``arg_min``/``arg_max`` with struct keys, ``quantile_cont`` over a list."""

    name = "duckdb"

    def ts(self, moment: datetime) -> str:
        return f"TIMESTAMPTZ {self.lit(_iso(moment))}"

    def json_number(self, key: str, alias: str) -> str:
        raw = f"json_extract({alias}.extra, {self.lit('$.' + key)})"
        return (
            f"(CASE json_type({raw}) WHEN 'BOOLEAN' THEN "
            f"(CASE WHEN CAST({raw} AS BOOLEAN) THEN 1.0 ELSE 0.0 END) "
            f"WHEN 'DOUBLE' THEN CAST({raw} AS DOUBLE) WHEN 'UBIGINT' THEN CAST({raw} AS DOUBLE) "
            f"WHEN 'BIGINT' THEN CAST({raw} AS DOUBLE) END)"
        )

    def epoch_us(self, ts: str) -> str:
        return f"epoch_us({ts})"

    def idiv(self, a: str, b: int) -> str:
        return f"({a} // {b})"

    def last(self, x: str, cond: str, alias: str = "e") -> str:
        return f"arg_max({x}, ({alias}.ts, {x})) FILTER (WHERE {cond})"

    def quantiles(self, x: str, probs: Sequence[float]) -> str:
        return f"quantile_cont({x}, [{', '.join(self.num(p) for p in probs)}])"

    def attr_text(self, key: str, alias: str = "e") -> str:
        return f"json_extract_string({alias}.attrs, {self.lit('$.' + key)})"

    def split_number(self, text: str, index: int) -> str:
        return f"TRY_CAST(string_split({text}, ',')[{index}] AS DOUBLE)"

    def first_by(self, x: str, key: str) -> str:
        return f"arg_min({x}, {key})"


class PostgresDialect(Dialect):
    """PostgreSQL: ``DISTINCT ON`` for first exposures, ``percentile_cont`` over an array."""

    name = "postgres"
    # The default 4 MB work_mem makes the per-unit GROUP BY spill to disk in many batches
    # (measured: 10M events, 1M units went from ~35-120 s to far less); 512 MB per analysis
    # session keeps it in memory. set_config is a SELECT, so it fits the read-only query API.
    session_setup = ("SELECT set_config('work_mem', '512MB', false)",)

    def ts(self, moment: datetime) -> str:
        return f"CAST({self.lit(_iso(moment))} AS timestamptz)"

    def double(self, x: str) -> str:
        return f"CAST({x} AS double precision)"

    def json_number(self, key: str, alias: str) -> str:
        node = f"(CAST({alias}.extra AS jsonb) -> {self.lit(key)})"
        return (
            f"(CASE jsonb_typeof({node}) WHEN 'number' THEN CAST({node} #>> '{{}}' AS double "
            f"precision) WHEN 'boolean' THEN (CASE WHEN CAST({node} #>> '{{}}' AS boolean) "
            "THEN 1.0 ELSE 0.0 END) END)"
        )

    def epoch_us(self, ts: str) -> str:
        return f"CAST(extract(epoch FROM {ts}) * 1000000 AS bigint)"

    def last(self, x: str, cond: str, alias: str = "e") -> str:
        return f"(array_agg({x} ORDER BY {alias}.ts DESC, {x} DESC) FILTER (WHERE {cond}))[1]"

    def quantiles(self, x: str, probs: Sequence[float]) -> str:
        arr = ", ".join(self.num(p) for p in probs)
        return f"percentile_cont(ARRAY[{arr}]::double precision[]) WITHIN GROUP (ORDER BY {x})"

    def attr_text(self, key: str, alias: str = "e") -> str:
        return f"(CAST({alias}.attrs AS jsonb) ->> {self.lit(key)})"

    def split_number(self, text: str, index: int) -> str:
        return f"CAST(NULLIF(split_part({text}, ',', {index}), '') AS double precision)"

    def first_by(self, x: str, key: str) -> str:
        return f"(array_agg({x} ORDER BY {key}))[1]"


class ClickHouseDialect(Dialect):
    """ClickHouse: ``argMin`` on tuples, ``quantilesExactInclusive`` (R-7, repeatable)."""

    name = "clickhouse"

    def lit(self, text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

    def ts(self, moment: datetime) -> str:
        text = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        return f"toDateTime64({self.lit(text)}, 6, 'UTC')"

    def double(self, x: str) -> str:
        return f"toFloat64({x})"

    def var_samp(self, x: str) -> str:
        # varSamp is the fast, cancelling formula; the *Stable variants use Welford's update.
        return f"varSampStable({x})"

    def covar_samp(self, x: str, y: str) -> str:
        return f"covarSampStable({x}, {y})"

    def json_number(self, key: str, alias: str) -> str:
        doc, k = f"{alias}.extra", self.lit(key)
        return (
            f"multiIf(JSONType({doc}, {k}) = 'Bool', toFloat64(JSONExtractBool({doc}, {k})), "
            f"JSONType({doc}, {k}) IN ('Int64', 'UInt64', 'Double'), "
            f"JSONExtract({doc}, {k}, 'Nullable(Float64)'), NULL)"
        )

    def epoch_us(self, ts: str) -> str:
        return f"toUnixTimestamp64Micro({ts})"

    def idiv(self, a: str, b: int) -> str:
        return f"intDiv({a}, {b})"

    def last(self, x: str, cond: str, alias: str = "e") -> str:
        return f"argMaxIf({x}, ({alias}.ts, {x}), {cond})"

    def quantiles(self, x: str, probs: Sequence[float]) -> str:
        return f"quantilesExactInclusive({', '.join(self.num(p) for p in probs)})({x})"

    def attr_text(self, key: str, alias: str = "e") -> str:
        return f"JSONExtractString({alias}.attrs, {self.lit(key)})"

    def split_number(self, text: str, index: int) -> str:
        return f"toFloat64OrNull(splitByChar(',', {text})[{index}])"

    def first_by(self, x: str, key: str) -> str:
        return f"argMin({x}, {key})"


_DIALECTS: dict[str, Dialect] = {
    "duckdb": DuckDBDialect(),
    "postgres": PostgresDialect(),
    "clickhouse": ClickHouseDialect(),
}


def dialect_for(name: str) -> Dialect:
    """The dialect of a store (``store.dialect``)."""
    try:
        return _DIALECTS[name]
    except KeyError:
        known = ", ".join(sorted(_DIALECTS))
        raise ValidationError(
            f"store dialect {name!r} is not supported by analysis (known: {known})"
        ) from None


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()
