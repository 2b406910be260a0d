"""Metadata filters: a small Mongo-style language compiled to parameterised SQL.

    {"lang": "en"}                          equality (also {"lang": {"$eq": "en"}})
    {"lang": {"$ne": "de"}}                 not equal (also true when the key is absent)
    {"topic": {"$in": ["a", "b"]}}          one of ($nin: none of)
    {"year": {"$gte": 2020, "$lt": 2024}}   ranges on numbers or strings ($gt $gte $lt $lte)
    {"year": {"$between": [2020, 2023]}}    a range, both ends included
    {"title": {"$like": "Espresso%"}}       SQL LIKE pattern (% any run, _ one character; $ilike: any case)
    {"author": {"$exists": true}}           key present (false: absent)
    {"tags": {"$contains": "brew"}}         the array holds this element
    {"tags": {"$contains": ["a", "b"]}}     the array holds all of these, in any order
    {"$and": [f, ...]}, {"$or": [f, ...]}   combinations; several keys in one object mean AND
    {"$not": f}, {"$not": [f, ...]}         the documents f does not match (a list: none of them)
    {"document_id": {"$in": ["a", "b"]}}    the chunk's document id (a string), not a metadata key

`$eq` is exact JSON equality for every type, and `$ne` its exact complement: for any value v,
`{"k": {"$eq": v}}` and `{"k": {"$ne": v}}` split a collection in two, with the documents
that lack `k` on the `$ne` side. So `{"tags": ["brew"]}` matches `["brew"]` only, not
`["brew", "espresso"]` nor `["espresso", "brew"]` (arrays compare element by element, in
order); objects compare key by key; numbers by value (1 equals 1.0); a string never equals
a number, nor a scalar an array that holds it. `{"k": null}` matches a stored JSON null,
not a missing key (for that: `{"k": {"$exists": false}}`); `{"k": {"$ne": null}}` matches
every other document, missing key included. `$nin` and `$not` are complements in the same
way: `{"$not": f}` matches exactly the documents `f` does not, missing keys included. Ranges
and `$between` compare numbers with numbers and strings with strings (in the database's
collation, case-sensitive), never a value of another type. `$like`/`$ilike` match the value's
text as `metadata ->> key` gives it: a string's characters, a number's digits (`"20%"`
matches 2023), `true`/`false`, an array's or object's JSON text; a null or a missing key never.

`$contains` is PostgreSQL's jsonb containment (`@>`) of the stored value: with a scalar or a
list, the stored value is an array holding each given element (duplicates and order do not
matter); with an object, the stored value is an object holding those keys with (recursively)
contained values, e.g. {"meta": {"$contains": {"kind": "faq"}}}. It never matches a stored
scalar: a scalar is tested with `$eq`.

`document_id` is the chunk table's column, a string every chunk has: it takes `$eq $ne $in
$nin $gt $gte $lt $lte $between $like $ilike` with strings (a number is refused, not silently
unmatched) and `$exists`; a metadata key named `document_id` cannot be filtered on.

Equality and `$contains` compile to `metadata @> {k: v}`, which the collection's GIN
(jsonb_path_ops) index serves; for scalars that alone is exact equality (under a key,
containment does not let an array contain a scalar), and for an array or object `$eq` adds
`metadata -> k = v`, with containment as the index's prefilter. `document_id` conditions
read the column, which its b-tree index serves.

Beside langchain-postgres' `PGVectorStore` (v2), whose SQL casts `metadata ->> key` to the
operand's Python type: the operators, their nesting and `$like`/`$ilike` are its own, and
values of one type select alike. On purpose, values are never cast here (there the string "1"
equals the number 1, and a stored value that does not cast fails the query); `$ne`, `$nin`
and `$not` match documents without the key (its NULLs drop them); `$exists` is the key's
presence, a null value included (as in its older `PGVector`); `$eq`/`$in` take arrays, objects,
booleans and null; a key may carry several operators; keys are literal ("a.b" is no path).
tests/integration/test_filter_parity.py pins each difference.

Keys and values always travel as query parameters, never as SQL text.

A filter is checked against these limits before anything is compiled, so that it is refused
up front (`LimitExceeded`, HTTP 422) instead of meeting PostgreSQL's own limits (65,535 bind
parameters, statement size) as a database error:

- values: one per condition (`{"k": v}`, `$ne`, `$gt`, `$like`…, `$exists`) and one per
  element of an `$in`/`$nin`/`$contains`/`$between` list, at most `max_values` (the
  MAX_FILTER_VALUES setting, default 1000) and never over HARD_MAX_VALUES (10,000): a value
  binds at most two parameters;
- one key: at most MAX_KEY_CHARS (256) characters;
- all its keys and strings together: at most MAX_FILTER_CHARS (1,000,000) characters;
- `$and`/`$or`/`$not` nesting: at most MAX_DEPTH (32) levels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from ingest import text_problem
from retriever.errors import InvalidFilter, LimitExceeded

__all__ = [
    "COMBINATORS",
    "DOCUMENT_ID",
    "HARD_MAX_VALUES",
    "MAX_DEPTH",
    "MAX_FILTER_CHARS",
    "MAX_KEY_CHARS",
    "OPERATORS",
    "check_filter",
    "compile_filter",
]

OPERATORS = (
    "$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$between", "$like", "$ilike", "$exists", "$contains",
)  # fmt: skip
COMBINATORS = ("$and", "$or", "$not")
DOCUMENT_ID = "document_id"  # a column of the chunk table, filtered like a key every chunk holds as a string
_RANGE = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_TEXT = {"$eq": "=", "$ne": "<>", **_RANGE, "$like": "LIKE", "$ilike": "ILIKE"}  # on document_id
_SCALAR = (str, int, float, bool, type(None))
_LISTED = ("$in", "$nin", "$contains", "$between")  # each element of their list counts as a value
MAX_DEPTH = 32  # combinator nesting; far deeper would exhaust Python's recursion while composing SQL
HARD_MAX_VALUES = 10_000  # ≤ 20,000 bind parameters, far below PostgreSQL's 65,535, whatever the settings say
MAX_KEY_CHARS = 256
MAX_FILTER_CHARS = 1_000_000


def _explicit(value: Any) -> bool:
    """Whether a key's value is a set of operators ({"$gt": 1}) rather than a value to equal."""
    return isinstance(value, Mapping) and any(str(op).startswith("$") for op in value)


class _Compiler:
    def __init__(self, table: sql.Composable) -> None:
        self.column = sql.SQL("{}.metadata").format(table)
        self.document_id = sql.SQL("{}.document_id").format(table)
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
            elif key == "$not":
                if not isinstance(value, Mapping | list) or not value:
                    raise InvalidFilter("$not takes a filter, or a non-empty list of filters none of which may match")
                either = sql.SQL(" OR ").join(self.node(item, depth + 1) for item in _as_list(value))
                # two-valued: where the filter is unknown (a missing key) it did not match, so $not does
                parts.append(sql.SQL("(NOT coalesce(({}), false))").format(either))
            elif not isinstance(key, str) or not key or key.startswith("$"):
                raise InvalidFilter(
                    f"unknown filter operator {key!r}; combine filters with {', '.join(COMBINATORS)} "
                    f"and compare keys with {', '.join(OPERATORS)}"
                )
            elif _explicit(value):
                parts.extend(self.condition(key, op, operand) for op, operand in value.items())
            else:
                parts.append(self.condition(key, "$eq", value))
        return sql.SQL("({})").format(sql.SQL(" AND ").join(parts))

    def condition(self, key: str, op: str, operand: Any) -> sql.Composable:
        if op not in OPERATORS:
            raise InvalidFilter(f"unknown filter operator {op!r} on {key!r}; operators: {', '.join(OPERATORS)}")
        if key == DOCUMENT_ID:
            return self.document_condition(op, operand)
        return self.operator(key, op, operand)

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
        if op in ("$like", "$ilike"):
            text = sql.SQL("({} ->> {})").format(self.column, self.param(key))
            return sql.SQL("({} {} {})").format(text, sql.SQL(_TEXT[op]), self.param(_pattern(key, op, operand)))
        if op in _RANGE or op == "$between":
            checked = _bounds(key, op, operand)
            field = self.field(key)
            bounds = [self.param(Jsonb(bound)) for bound in checked]
            test = sql.SQL("BETWEEN {} AND {}" if op == "$between" else _RANGE[op] + " {}").format(*bounds)
            return sql.SQL("(jsonb_typeof({field}) = {kind} AND {field} {test})").format(
                field=field, kind=sql.Literal("string" if isinstance(checked[0], str) else "number"), test=test
            )
        if not isinstance(operand, bool):  # $exists
            raise InvalidFilter(f"$exists on {key!r} takes true or false")
        test = sql.SQL("{} ? {}").format(self.column, self.param(key))
        return test if operand else sql.SQL("NOT ({})").format(test)

    def document_condition(self, op: str, operand: Any) -> sql.Composable:
        """A condition on the document_id column, a string every chunk has (never null)."""
        column = self.document_id
        if op == "$exists":
            if not isinstance(operand, bool):
                raise InvalidFilter("$exists on 'document_id' takes true or false")
            return sql.SQL("true" if operand else "false")
        if op in ("$in", "$nin"):
            if not isinstance(operand, list) or not all(isinstance(v, str) for v in operand):
                raise InvalidFilter(f"document_id is a string: {op} on it takes a list of strings")
            test = "{} = ANY({}::text[])" if op == "$in" else "{} <> ALL({}::text[])"
            return sql.SQL(test).format(column, self.param(operand))
        if op == "$between":
            low, high = _bounds(DOCUMENT_ID, op, operand)
            if not isinstance(low, str):
                raise InvalidFilter("document_id is a string: $between on it takes two strings")
            return sql.SQL("({} BETWEEN {} AND {})").format(column, self.param(low), self.param(high))
        if op not in _TEXT:
            raise InvalidFilter(f"{op} does not apply to document_id, a string; its operators: {', '.join(_TEXT)}")
        if not isinstance(operand, str):
            raise InvalidFilter(f"document_id is a string: {op} on it takes a string")
        return sql.SQL("({} {} {})").format(column, sql.SQL(_TEXT[op]), self.param(operand))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _pattern(key: str, op: str, operand: Any) -> str:
    if not isinstance(operand, str):
        raise InvalidFilter(f"{op} on {key!r} takes a pattern string (% any run of characters, _ any one)")
    return operand


def _bounds(key: str, op: str, operand: Any) -> list[Any]:
    """A range's bounds, [value] or [low, high]: numbers (booleans are not) or strings, all of one kind."""
    bounds = [operand] if op in _RANGE else operand
    well_formed = isinstance(bounds, list) and len(bounds) == (1 if op in _RANGE else 2)
    numbers = well_formed and all(isinstance(v, int | float) and not isinstance(v, bool) for v in bounds)
    if not (numbers or (well_formed and all(isinstance(v, str) for v in bounds))):
        takes = "a number or a string" if op in _RANGE else "[low, high]: two numbers or two strings"
        raise InvalidFilter(f"{op} on {key!r} takes {takes}")
    return bounds


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
            "(MAX_FILTER_VALUES: one per condition and per $in/$nin/$contains/$between element)"
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
                elif key in COMBINATORS:
                    filters = value if isinstance(value, list) else [value] if isinstance(value, Mapping) else []
                    stack.extend((element, True) for element in filters)
                elif isinstance(key, str) and len(key) > MAX_KEY_CHARS:
                    raise LimitExceeded(f"a filter key has {len(key)} characters, over the limit of {MAX_KEY_CHARS}")
                else:
                    for op, operand in (value if _explicit(value) else {"$eq": value}).items():
                        listed = op in _LISTED and isinstance(operand, list)
                        values += max(1, len(operand)) if listed else 1
                        stack.append((operand, False))
    return values, chars


def _storable(text: str) -> None:
    # a NUL or an unpaired surrogate cannot be sent to PostgreSQL, let alone match
    if problem := text_problem(text, f"the filter string {text[:40]!r}"):
        raise InvalidFilter(problem)


def compile_filter(
    spec: Mapping[str, Any] | None, table: sql.Composable, *, max_values: int | None = None
) -> tuple[sql.Composable, dict[str, Any]]:
    """Compile a filter into a boolean SQL expression over a chunk table and its parameters.

    `table` names the chunk table or its alias in the statement (e.g. `sql.Identifier("c")`);
    the expression reads its `metadata` (jsonb) and `document_id` (text) columns. No filter and
    an empty object both match everything, as in MongoDB and LangChain's stores. Raises
    `LimitExceeded` over the limits (`check_filter`; `max_values`: the MAX_FILTER_VALUES
    setting) and `InvalidFilter` for anything that does not compile.
    """
    if spec is None or (isinstance(spec, Mapping) and not spec):
        return sql.SQL("true"), {}
    check_filter(spec, max_values)
    compiler = _Compiler(table)
    return compiler.node(spec), compiler.params
