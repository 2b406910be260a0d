"""Metadata filters: a small Mongo-style language compiled to parameterised SQL.

    {"lang": "en"}                          equality (also {"lang": {"$eq": "en"}})
    {"lang": {"$ne": "de"}}                 not equal (also true when the key is absent)
    {"topic": {"$in": ["a", "b"]}}          one of ($nin: none of)
    {"year": {"$gte": 2020, "$lt": 2024}}   ranges on numbers or strings ($gt $gte $lt $lte)
    {"author": {"$exists": true}}           key present (false: absent)
    {"tags": {"$contains": "brew"}}         the array holds this element
    {"tags": {"$contains": ["a", "b"]}}     the array holds all of these, in any order
    {"$and": [f, ...]}, {"$or": [f, ...]}   combinations; several keys in one object mean AND

`$eq` is exact JSON equality for every type, and `$ne` its exact complement: for any value v,
`{"k": {"$eq": v}}` and `{"k": {"$ne": v}}` split a collection in two, with the documents
that lack `k` on the `$ne` side. So `{"tags": ["brew"]}` matches `["brew"]` only, not
`["brew", "espresso"]` nor `["espresso", "brew"]` (arrays compare element by element, in
order); objects compare key by key; numbers by value (1 equals 1.0); a string never equals
a number, nor a scalar an array that holds it. `{"k": null}` matches a stored JSON null,
not a missing key (for that: `{"k": {"$exists": false}}`); `{"k": {"$ne": null}}` matches
every other document, missing key included.

`$contains` is PostgreSQL's jsonb containment (`@>`) of the stored value: with a scalar or a
list, the stored value is an array holding each given element (duplicates and order do not
matter); with an object, the stored value is an object holding those keys with (recursively)
contained values, e.g. {"meta": {"$contains": {"kind": "faq"}}}. It never matches a stored
scalar: a scalar is tested with `$eq`.

Equality and `$contains` compile to `metadata @> {k: v}`, which the collection's GIN
(jsonb_path_ops) index serves; for scalars that alone is exact equality (under a key,
containment does not let an array contain a scalar), and for an array or object `$eq` adds
`metadata -> k = v`, with containment as the index's prefilter.

Keys and values always travel as query parameters, never as SQL text.

A filter is checked against these limits before anything is compiled, so that it is refused
up front (`LimitExceeded`, HTTP 422) instead of meeting PostgreSQL's own limits (65,535 bind
parameters, statement size) as a database error:

- values: one per condition (`{"k": v}`, `$ne`, `$gt`…, `$exists`) and one per element of
  an `$in`/`$nin`/`$contains` list, at most `max_values` (the MAX_FILTER_VALUES setting,
  default 1000) and never over HARD_MAX_VALUES (10,000): a value binds at most two parameters;
- one key: at most MAX_KEY_CHARS (256) characters;
- all its keys and strings together: at most MAX_FILTER_CHARS (1,000,000) characters;
- `$and`/`$or` nesting: at most MAX_DEPTH (32) levels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from ingest import text_problem
from retriever.errors import InvalidFilter, LimitExceeded

__all__ = [
    "HARD_MAX_VALUES",
    "MAX_DEPTH",
    "MAX_FILTER_CHARS",
    "MAX_KEY_CHARS",
    "OPERATORS",
    "check_filter",
    "compile_filter",
]

OPERATORS = ("$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists", "$contains")
_RANGE = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_SCALAR = (str, int, float, bool, type(None))
_LISTED = ("$in", "$nin", "$contains")  # each element of their list counts as a value
MAX_DEPTH = 32  # $and/$or nesting; far deeper would exhaust Python's recursion while composing SQL
HARD_MAX_VALUES = 10_000  # ≤ 20,000 bind parameters, far below PostgreSQL's 65,535, whatever the settings say
MAX_KEY_CHARS = 256
MAX_FILTER_CHARS = 1_000_000


class _Compiler:
    def __init__(self, column: sql.Composable) -> None:
        self.column = column
        self.params: dict[str, Any] = {}

    def param(self, value: Any) -> sql.Composable:
        name = f"filter_{len(self.params)}"
        self.params[name] = value
        return sql.Placeholder(name)

    def node(self, spec: Any, depth: int = 0) -> sql.Composable:
        if depth > MAX_DEPTH:
            raise InvalidFilter(f"filter nested deeper than {MAX_DEPTH} levels")
        if not isinstance(spec, Mapping) or not spec:
            raise InvalidFilter("a filter must be a non-empty JSON object")
        parts = []
        for key, value in spec.items():
            if key in ("$and", "$or"):
                if not isinstance(value, list) or not value:
                    raise InvalidFilter(f"{key} takes a non-empty list of filters")
                joiner = sql.SQL(" AND " if key == "$and" else " OR ")
                parts.append(sql.SQL("({})").format(joiner.join(self.node(item, depth + 1) for item in value)))
            elif not isinstance(key, str) or not key or key.startswith("$"):
                raise InvalidFilter(f"unknown filter operator {key!r}; operators: $and, $or, {', '.join(OPERATORS)}")
            elif isinstance(value, Mapping) and any(str(op).startswith("$") for op in value):
                parts.extend(self.operator(key, op, operand) for op, operand in value.items())
            else:
                parts.append(self.operator(key, "$eq", value))
        return sql.SQL("({})").format(sql.SQL(" AND ").join(parts))

    def field(self, key: str) -> sql.Composable:
        return sql.SQL("({} -> {})").format(self.column, self.param(key))

    def operator(self, key: str, op: str, operand: Any) -> sql.Composable:
        if op == "$eq":
            # containment keeps the GIN (jsonb_path_ops) index usable; for a scalar it is exact
            # equality, as an array contains a bare scalar only at the top level, never under a key
            document = self.param(Jsonb({key: operand}))
            contained = sql.SQL("{} @> {}").format(self.column, document)
            if isinstance(operand, _SCALAR):
                return contained
            # an array or object contains smaller ones (["a", "b"] @> ["a"]): compare exactly too,
            # with the key and value read back from the same two parameters
            name = self.param(key)
            return sql.SQL("({contained} AND ({column} -> {name}) = ({document} -> {name}))").format(
                contained=contained, column=self.column, name=name, document=document
            )
        if op == "$ne":
            return sql.SQL("{} IS DISTINCT FROM {}").format(self.field(key), self.param(Jsonb(operand)))
        if op == "$contains":
            if not isinstance(operand, (*_SCALAR, list, dict)):
                raise InvalidFilter(f"$contains on {key!r} takes a value, a list of values or an object")
            elements = [operand] if isinstance(operand, _SCALAR) else operand
            return sql.SQL("{} @> {}").format(self.column, self.param(Jsonb({key: elements})))
        if op in ("$in", "$nin"):
            if not isinstance(operand, list) or not all(isinstance(v, _SCALAR) for v in operand):
                raise InvalidFilter(f"{op} on {key!r} takes a list of scalar values")
            test = sql.SQL("{} IN (SELECT jsonb_array_elements({}))").format(
                self.field(key), self.param(Jsonb(operand))
            )
            return test if op == "$in" else sql.SQL("NOT coalesce({}, false)").format(test)
        if op in _RANGE:
            if isinstance(operand, bool) or not isinstance(operand, (int, float, str)):
                raise InvalidFilter(f"{op} on {key!r} takes a number or a string")
            kind = "string" if isinstance(operand, str) else "number"
            return sql.SQL("(jsonb_typeof({field}) = {kind} AND {field} {cmp} {value})").format(
                field=self.field(key), kind=sql.Literal(kind), cmp=sql.SQL(_RANGE[op]), value=self.param(Jsonb(operand))
            )
        if op == "$exists":
            if not isinstance(operand, bool):
                raise InvalidFilter(f"$exists on {key!r} takes true or false")
            test = sql.SQL("{} ? {}").format(self.column, self.param(key))
            return test if operand else sql.SQL("NOT ({})").format(test)
        raise InvalidFilter(f"unknown filter operator {op!r} on {key!r}; operators: {', '.join(OPERATORS)}")


def check_filter(spec: Any, max_values: int | None = None) -> int:
    """Check a filter against the limits (module docstring) before it is compiled; return its number of values.

    `max_values` (the MAX_FILTER_VALUES setting) can only lower HARD_MAX_VALUES. Raises
    `LimitExceeded` naming the count and the limit; whether the filter is well formed is
    for `compile_filter` to say.
    """
    limit = HARD_MAX_VALUES if max_values is None else min(max_values, HARD_MAX_VALUES)
    values, chars = _measure(spec)
    if values > limit:
        raise LimitExceeded(
            f"the filter compares {values} values, over the limit of {limit} "
            "(MAX_FILTER_VALUES: one per condition and per $in/$nin/$contains element)"
        )
    if chars > MAX_FILTER_CHARS:
        raise LimitExceeded(
            f"the filter's keys and strings hold {chars} characters, over the limit of {MAX_FILTER_CHARS}"
        )
    return values


def _measure(spec: Any) -> tuple[int, int]:
    """The filter's values and the characters of its keys and strings, walked without recursion
    (so at any depth); a key over MAX_KEY_CHARS is refused at once."""
    values = chars = 0
    stack: list[tuple[Any, bool]] = [(spec, True)]  # (item, whether a filter object belongs there)
    while stack:
        item, is_filter = stack.pop()
        if isinstance(item, str):
            _storable(item)
            chars += len(item)
        elif isinstance(item, list | tuple):
            stack.extend((element, False) for element in item)
        elif isinstance(item, Mapping):
            for key, value in item.items():
                if isinstance(key, str):
                    _storable(key)
                    chars += len(key)
                if not is_filter:  # a value: only its characters count
                    stack.append((value, False))
                elif key in ("$and", "$or"):
                    stack.extend((element, True) for element in (value if isinstance(value, list) else ()))
                elif isinstance(key, str) and len(key) > MAX_KEY_CHARS:
                    raise LimitExceeded(f"a filter key has {len(key)} characters, over the limit of {MAX_KEY_CHARS}")
                else:
                    explicit = isinstance(value, Mapping) and any(str(op).startswith("$") for op in value)
                    for op, operand in (value if explicit else {"$eq": value}).items():
                        listed = op in _LISTED and isinstance(operand, list)
                        values += max(1, len(operand)) if listed else 1
                        stack.append((operand, False))
    return values, chars


def _storable(text: str) -> None:
    # a NUL or an unpaired surrogate cannot be sent to PostgreSQL, let alone match
    if problem := text_problem(text, f"the filter string {text[:40]!r}"):
        raise InvalidFilter(problem)


def compile_filter(
    spec: Mapping[str, Any] | None, column: sql.Composable, *, max_values: int | None = None
) -> tuple[sql.Composable, dict[str, Any]]:
    """Compile a filter into a boolean SQL expression over `column` (a jsonb) and its parameters.

    No filter and an empty object both match everything, as in MongoDB and LangChain's stores.
    Raises `LimitExceeded` over the limits (`check_filter`; `max_values`: the MAX_FILTER_VALUES
    setting) and `InvalidFilter` for anything that does not compile.
    """
    if spec is None or (isinstance(spec, Mapping) and not spec):
        return sql.SQL("true"), {}
    check_filter(spec, max_values)
    compiler = _Compiler(column)
    return compiler.node(spec), compiler.params
