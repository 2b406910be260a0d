"""Metadata filters: a small Mongo-style language compiled to parameterised SQL.

    {"lang": "en"}                          equality (also {"lang": {"$eq": "en"}})
    {"topic": {"$in": ["a", "b"]}}          one of ($nin: none of)
    {"year": {"$gte": 2020, "$lt": 2024}}   ranges on numbers or strings ($gt $gte $lt $lte)
    {"author": {"$exists": true}}           key present (false: absent)
    {"lang": {"$ne": "de"}}                 not equal (also true when the key is absent)
    {"$and": [f, ...]}, {"$or": [f, ...]}   combinations; several keys in one object mean AND

Keys and values always travel as query parameters, never as SQL text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from retriever.errors import InvalidFilter

__all__ = ["OPERATORS", "compile_filter"]

OPERATORS = ("$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists")
_RANGE = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_SCALAR = (str, int, float, bool, type(None))
MAX_DEPTH = 32  # $and/$or nesting; far deeper would exhaust Python's recursion while composing SQL


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
            # containment keeps the GIN (jsonb_path_ops) index usable for plain equality
            return sql.SQL("{} @> {}").format(self.column, self.param(Jsonb({key: operand})))
        if op == "$ne":
            return sql.SQL("{} IS DISTINCT FROM {}").format(self.field(key), self.param(Jsonb(operand)))
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


def compile_filter(spec: Mapping[str, Any] | None, column: sql.Composable) -> tuple[sql.Composable, dict[str, Any]]:
    """Compile a filter into a boolean SQL expression over `column` (a jsonb) and its parameters.

    No filter and an empty object both match everything, as in MongoDB and LangChain's stores.
    """
    if spec is None or (isinstance(spec, Mapping) and not spec):
        return sql.SQL("true"), {}
    compiler = _Compiler(column)
    return compiler.node(spec), compiler.params
