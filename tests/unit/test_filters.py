"""Metadata filters compile to parameterised SQL; anything else is an InvalidFilter."""

from __future__ import annotations

import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from retriever.errors import InputError, InvalidFilter
from retriever.filters import OPERATORS, compile_filter

COLUMN = sql.SQL("c.metadata")


def compiled(spec: object) -> tuple[str, dict[str, object]]:
    statement, params = compile_filter(spec, COLUMN)  # type: ignore[arg-type]
    return statement.as_string(None), params


def values(params: dict[str, object]) -> list[object]:
    """Parameter values with Jsonb unwrapped, for comparing against plain Python."""
    return [value.obj if isinstance(value, Jsonb) else value for value in params.values()]


@pytest.mark.parametrize("spec", [None, {}])
def test_no_filter_or_an_empty_object_is_true_without_parameters(spec):
    assert compiled(spec) == ("true", {})


def test_plain_value_is_jsonb_containment_so_the_gin_index_applies():
    text, params = compiled({"lang": "en"})
    assert "c.metadata @> %(filter_" in text
    assert {"lang": "en"} in values(params)


def test_eq_operator_is_the_same_as_a_plain_value():
    explicit_text, explicit_params = compiled({"lang": {"$eq": "en"}})
    plain_text, plain_params = compiled({"lang": "en"})
    assert explicit_text == plain_text
    assert values(explicit_params) == values(plain_params) == [{"lang": "en"}]


def test_ne_is_null_safe_inequality():
    text, params = compiled({"lang": {"$ne": "de"}})
    assert "IS DISTINCT FROM" in text
    assert values(params) == ["lang", "de"]


@pytest.mark.parametrize(("op", "negated"), [("$in", False), ("$nin", True)])
def test_in_and_nin_test_membership_in_a_jsonb_array(op, negated):
    text, params = compiled({"topic": {op: ["a", "b", 3]}})
    assert "IN (SELECT jsonb_array_elements(" in text
    assert text.startswith("(NOT coalesce(") is negated
    assert values(params) == ["topic", ["a", "b", 3]]


@pytest.mark.parametrize(("op", "symbol"), [("$gt", ">"), ("$gte", ">="), ("$lt", "<"), ("$lte", "<=")])
def test_range_operators_compare_values_of_the_same_json_type(op, symbol):
    number_text, number_params = compiled({"year": {op: 2020}})
    string_text, _ = compiled({"date": {op: "2020-01-01"}})
    assert f" {symbol} %(filter_" in number_text
    assert "jsonb_typeof" in number_text and "'number'" in number_text
    assert "'string'" in string_text
    assert values(number_params) == ["year", 2020]


def test_several_operators_on_one_key_are_anded():
    text, params = compiled({"year": {"$gte": 2020, "$lt": 2024}})
    assert " >= " in text and " < " in text and " AND " in text
    assert [v for v in values(params) if v != "year"] == [2020, 2024]


@pytest.mark.parametrize(("operand", "negated"), [(True, False), (False, True)])
def test_exists_tests_the_key_with_the_question_mark_operator(operand, negated):
    text, params = compiled({"author": {"$exists": operand}})
    assert "c.metadata ? %(filter_0)s" in text
    assert ("NOT (" in text) is negated
    assert values(params) == ["author"]


def test_and_or_combine_filters():
    text, _ = compiled({"$or": [{"lang": "en"}, {"$and": [{"year": {"$gt": 1}}, {"x": {"$exists": True}}]}]})
    assert " OR " in text and " AND " in text


def test_several_keys_in_one_object_are_anded():
    text, _ = compiled({"a": 1, "b": 2})
    assert text.count("@>") == 2 and " AND " in text


@pytest.mark.parametrize(
    "spec",
    [
        {"year": {"$regex": "x"}},
        {"$not": {"a": 1}},
        {"year": {"$gt": 1, "lt": 2}},
    ],
)
def test_unknown_operators_are_rejected(spec):
    with pytest.raises(InvalidFilter, match="unknown filter operator"):
        compile_filter(spec, COLUMN)


@pytest.mark.parametrize(
    "spec",
    [
        {"topic": {"$in": "a"}},
        {"topic": {"$nin": [["nested"]]}},
        {"topic": {"$in": [{"a": 1}]}},
        {"year": {"$gt": True}},
        {"year": {"$gte": None}},
        {"year": {"$lt": [1]}},
        {"author": {"$exists": "yes"}},
        {"author": {"$exists": 1}},
        {"$and": {"a": 1}},
        {"$or": []},
        {"$and": [1]},
    ],
)
def test_operands_of_the_wrong_type_are_rejected(spec):
    with pytest.raises(InvalidFilter):
        compile_filter(spec, COLUMN)


@pytest.mark.parametrize("spec", [[{"a": 1}], "lang=en", 3, {"$and": [{}]}, {"a": 1, "$or": [{}]}])
def test_a_filter_must_be_a_non_empty_object(spec):
    with pytest.raises(InvalidFilter, match="non-empty JSON object"):
        compile_filter(spec, COLUMN)  # type: ignore[arg-type]


def test_invalid_filter_is_an_input_error():
    assert issubclass(InvalidFilter, InputError)


@pytest.mark.parametrize("op", [*OPERATORS])
def test_keys_travel_as_parameters_never_as_sql_text(op):
    key = "a'); DROP TABLE x; --\"evil"
    operand = {"$in": ["v"], "$nin": ["v"], "$exists": True}.get(op, "v")
    text, params = compiled({key: {op: operand}})
    assert "DROP" not in text and "evil" not in text
    assert key in values(params) or {key: operand} in values(params)


def test_values_travel_as_parameters_never_as_sql_text():
    text, _ = compiled({"a": {"$gt": "'; DROP TABLE x; --"}, "b": "'; DROP TABLE y; --"})
    assert "DROP" not in text
