"""Metadata filters compile to parameterised SQL; anything else is an InvalidFilter."""

from __future__ import annotations

import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from retriever.errors import InputError, InvalidFilter, LimitExceeded
from retriever.filters import (
    HARD_MAX_VALUES,
    MAX_DEPTH,
    MAX_FILTER_CHARS,
    MAX_KEY_CHARS,
    OPERATORS,
    check_filter,
    compile_filter,
)

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


@pytest.mark.parametrize("value", [["brew"], [], {"kind": "faq"}, {}, [{"a": 1}]])
def test_eq_on_an_array_or_object_is_exact_equality_with_containment_as_the_index_prefilter(value):
    # containment alone would let ["brew"] match ["brew", "espresso"]; two parameters, as for a scalar $ne
    for spec in ({"tags": value}, {"tags": {"$eq": value}}):
        text, params = compiled(spec)
        assert text == (
            "((c.metadata @> %(filter_0)s AND (c.metadata -> %(filter_1)s) = (%(filter_0)s -> %(filter_1)s)))"
        )
        assert values(params) == [{"tags": value}, "tags"]


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


@pytest.mark.parametrize(
    ("operand", "bound"),
    [
        ("brew", ["brew"]),
        (None, [None]),
        (3, [3]),
        (["brew", "espresso"], ["brew", "espresso"]),
        ([], []),
        ({"kind": "faq"}, {"kind": "faq"}),
    ],
)
def test_contains_is_jsonb_containment_of_a_list_or_object_a_scalar_standing_for_a_list_of_one(operand, bound):
    text, params = compiled({"tags": {"$contains": operand}})
    assert text == "(c.metadata @> %(filter_0)s)"
    assert values(params) == [{"tags": bound}]


def test_contains_is_a_listed_operator():
    assert "$contains" in OPERATORS


@pytest.mark.parametrize("operand", [{1, 2}, ("a", "b"), object()])
def test_contains_takes_json_values_only(operand):
    with pytest.raises(InvalidFilter, match=r"\$contains on 'tags' takes"):
        compile_filter({"tags": {"$contains": operand}}, COLUMN)


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
    assert any(value == key or (isinstance(value, dict) and key in value) for value in values(params))


def test_values_travel_as_parameters_never_as_sql_text():
    text, _ = compiled({"a": {"$gt": "'; DROP TABLE x; --"}, "b": "'; DROP TABLE y; --"})
    assert "DROP" not in text


# --- limits: checked before compiling, so PostgreSQL's own limits are never met as a database error ---------


def or_of(count: int) -> dict[str, object]:
    return {"$or": [{"n": i} for i in range(count)]}


def compiled_with(spec: object, **limits: int) -> tuple[str, dict[str, object]]:
    statement, params = compile_filter(spec, COLUMN, **limits)  # type: ignore[arg-type]
    return statement.as_string(None), params


def test_a_filter_over_the_limit_is_refused_naming_its_count_and_the_limit():
    with pytest.raises(LimitExceeded) as caught:
        compile_filter(or_of(1001), COLUMN, max_values=1000)
    assert "1001 values" in str(caught.value) and "limit of 1000" in str(caught.value)
    assert "MAX_FILTER_VALUES" in str(caught.value)


def test_a_filter_at_the_limit_compiles():
    text, params = compiled_with(or_of(1000), max_values=1000)
    assert len(params) == 1000 and text.count(" OR ") == 999


def test_every_element_of_an_in_list_counts_as_a_value():
    spec = {"topic": {"$in": list(range(600))}, "lang": {"$nin": list(range(400))}, "year": {"$gte": 1}}
    assert check_filter(spec) == 1001
    with pytest.raises(LimitExceeded, match="1001 values"):
        compile_filter(spec, COLUMN, max_values=1000)
    assert check_filter({"topic": {"$in": []}}) == 1  # an empty list still binds its key


def test_every_element_of_a_contains_list_counts_as_a_value_and_an_eq_array_as_one():
    assert check_filter({"tags": {"$contains": ["a", "b", "c"]}}) == 3
    assert check_filter({"tags": {"$contains": "a"}, "meta": {"$contains": {"x": 1, "y": 2}}}) == 2
    assert check_filter({"tags": {"$contains": []}}) == 1
    assert check_filter({"tags": ["a", "b", "c"], "other": {"$eq": ["a", "b"]}}) == 2
    with pytest.raises(LimitExceeded, match="1001 values"):
        compile_filter({"tags": {"$contains": list(range(1000))}, "lang": "en"}, COLUMN, max_values=1000)


def test_without_a_setting_the_hard_ceiling_applies_and_no_setting_can_raise_it():
    with pytest.raises(LimitExceeded, match=f"{HARD_MAX_VALUES + 1} values.*limit of {HARD_MAX_VALUES}"):
        compile_filter(or_of(HARD_MAX_VALUES + 1), COLUMN)
    with pytest.raises(LimitExceeded, match=f"limit of {HARD_MAX_VALUES}"):
        compile_filter(or_of(HARD_MAX_VALUES + 1), COLUMN, max_values=1_000_000)


def test_a_filter_at_the_hard_ceiling_binds_far_fewer_parameters_than_postgres_accepts():
    # the operators that bind most: two parameters (key and value) per value
    ops = [{"$ne": "x"}, {"$gt": 1}, {"$in": ["a"]}, {"$exists": True}, "plain", ["an", "array"], {"$contains": "a"}]
    spec = {"$or": [{f"k{i}": ops[i % len(ops)]} for i in range(HARD_MAX_VALUES)]}
    _, params = compile_filter(spec, COLUMN)
    assert len(params) <= 2 * HARD_MAX_VALUES < 65_535


def test_a_key_over_the_limit_is_refused_and_one_at_the_limit_compiles():
    compile_filter({"k" * MAX_KEY_CHARS: 1}, COLUMN)
    with pytest.raises(LimitExceeded, match=f"{MAX_KEY_CHARS + 1} characters.*limit of {MAX_KEY_CHARS}"):
        compile_filter({"$or": [{"a": 1}, {"k" * (MAX_KEY_CHARS + 1): {"$exists": True}}]}, COLUMN)


def test_a_filter_whose_strings_are_over_the_size_limit_is_refused():
    compile_filter({"a": "x" * (MAX_FILTER_CHARS - 1)}, COLUMN)  # its key and value: exactly the limit
    with pytest.raises(LimitExceeded, match=f"{MAX_FILTER_CHARS + 1} characters.*limit of {MAX_FILTER_CHARS}"):
        compile_filter({"a": {"$in": ["x" * (MAX_FILTER_CHARS - 1), "y"]}}, COLUMN)


def test_a_filter_nested_thousands_deep_is_refused_as_too_deep_not_a_crash():
    spec: dict[str, object] = {"a": 1}
    for _ in range(5000):
        spec = {"$and": [spec]}
    with pytest.raises(InvalidFilter, match=f"deeper than {MAX_DEPTH}"):
        compile_filter(spec, COLUMN)


def test_limits_are_input_errors():
    assert issubclass(LimitExceeded, InputError)
