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

TABLE = sql.Identifier("c")  # the chunk table's alias in the statement


def compiled(spec: object) -> tuple[str, dict[str, object]]:
    statement, params = compile_filter(spec, TABLE)  # type: ignore[arg-type]
    return statement.as_string(None), params


def values(params: dict[str, object]) -> list[object]:
    """Parameter values with Jsonb unwrapped, for comparing against plain Python."""
    return [value.obj if isinstance(value, Jsonb) else value for value in params.values()]


@pytest.mark.parametrize("spec", [None, {}])
def test_no_filter_or_an_empty_object_is_true_without_parameters(spec):
    assert compiled(spec) == ("true", {})


def test_plain_value_is_jsonb_containment_so_the_gin_index_applies():
    text, params = compiled({"lang": "en"})
    assert '"c".metadata @> %(filter_' in text
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
            '(("c".metadata @> %(filter_0)s AND ("c".metadata -> %(filter_1)s) = (%(filter_0)s -> %(filter_1)s)))'
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
    assert text == '("c".metadata @> %(filter_0)s)'
    assert values(params) == [{"tags": bound}]


def test_contains_is_a_listed_operator():
    assert "$contains" in OPERATORS


@pytest.mark.parametrize("operand", [{1, 2}, ("a", "b"), object()])
def test_contains_takes_json_values_only(operand):
    with pytest.raises(InvalidFilter, match=r"\$contains on 'tags' takes"):
        compile_filter({"tags": {"$contains": operand}}, TABLE)


@pytest.mark.parametrize(("operand", "negated"), [(True, False), (False, True)])
def test_exists_tests_the_key_with_the_question_mark_operator(operand, negated):
    text, params = compiled({"author": {"$exists": operand}})
    assert '"c".metadata ? %(filter_0)s' in text
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
        {"$nor": [{"a": 1}]},
        {"year": {"$not": {"$gt": 1}}},
        {"year": {"$gt": 1, "lt": 2}},
    ],
)
def test_unknown_operators_are_rejected(spec):
    with pytest.raises(InvalidFilter, match="unknown filter operator"):
        compile_filter(spec, TABLE)


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
        compile_filter(spec, TABLE)


@pytest.mark.parametrize("spec", [[{"a": 1}], "lang=en", 3, {"$and": [{}]}, {"a": 1, "$or": [{}]}])
def test_a_filter_must_be_a_non_empty_object(spec):
    with pytest.raises(InvalidFilter, match="non-empty JSON object"):
        compile_filter(spec, TABLE)  # type: ignore[arg-type]


def test_invalid_filter_is_an_input_error():
    assert issubclass(InvalidFilter, InputError)


@pytest.mark.parametrize("op", [*OPERATORS])
def test_keys_travel_as_parameters_never_as_sql_text(op):
    key = "a'); DROP TABLE x; --\"evil"
    operand = {"$in": ["v"], "$nin": ["v"], "$between": ["a", "b"], "$exists": True}.get(op, "v")
    text, params = compiled({key: {op: operand}})
    assert "DROP" not in text and "evil" not in text
    assert any(value == key or (isinstance(value, dict) and key in value) for value in values(params))


def test_values_travel_as_parameters_never_as_sql_text():
    text, _ = compiled({"a": {"$gt": "'; DROP TABLE x; --"}, "b": "'; DROP TABLE y; --"})
    assert "DROP" not in text


# --- $between, $like/$ilike, $not and document_id: PGVectorStore's operators, in this language --------------


@pytest.mark.parametrize(("bounds", "kind"), [([2020, 2023], "number"), ([1, 2.5], "number"), (["a", "m"], "string")])
def test_between_is_an_inclusive_range_over_values_of_the_bounds_json_type(bounds, kind):
    text, params = compiled({"year": {"$between": bounds}})
    assert f"jsonb_typeof((\"c\".metadata -> %(filter_0)s)) = '{kind}'" in text
    assert " BETWEEN %(filter_1)s AND %(filter_2)s" in text
    assert values(params) == ["year", *bounds]


@pytest.mark.parametrize(("op", "keyword"), [("$like", "LIKE"), ("$ilike", "ILIKE")])
def test_like_and_ilike_match_the_text_of_the_stored_value_as_pgvectorstore_does(op, keyword):
    text, params = compiled({"title": {op: "Espresso%"}})
    assert text == f'((("c".metadata ->> %(filter_0)s) {keyword} %(filter_1)s))'
    assert values(params) == ["title", "Espresso%"]


def test_not_is_the_two_valued_complement_so_a_missing_key_is_on_its_side():
    text, params = compiled({"$not": {"lang": {"$ne": "en"}}})
    assert text.startswith("((NOT coalesce((") and text.endswith(", false)))")
    assert values(params) == ["lang", "en"]


def test_not_of_a_list_matches_documents_matching_none_of_its_filters():
    text, params = compiled({"$not": [{"lang": "en"}, {"year": {"$lt": 2000}}]})
    assert text.startswith("((NOT coalesce((") and " OR " in text
    assert values(params) == [{"lang": "en"}, "year", 2000]


def test_not_beside_keys_is_anded_with_them():
    text, _ = compiled({"lang": "en", "$not": {"draft": True}})
    assert text.count("@>") == 2 and " AND (NOT coalesce(" in text


@pytest.mark.parametrize(
    ("op", "operand", "sql_text", "bound"),
    [
        ("$eq", "doc-1", '"c".document_id = %(filter_0)s', "doc-1"),
        ("$ne", "doc-1", '"c".document_id <> %(filter_0)s', "doc-1"),
        ("$gte", "b", '"c".document_id >= %(filter_0)s', "b"),
        ("$like", "docs/%", '"c".document_id LIKE %(filter_0)s', "docs/%"),
        ("$ilike", "DOCS/%", '"c".document_id ILIKE %(filter_0)s', "DOCS/%"),
        ("$in", ["a", "b"], '"c".document_id = ANY(%(filter_0)s::text[])', ["a", "b"]),
        ("$nin", [], '"c".document_id <> ALL(%(filter_0)s::text[])', []),
    ],
)
def test_document_id_is_the_chunk_tables_column_not_a_metadata_key(op, operand, sql_text, bound):
    text, params = compiled({"document_id": {op: operand}})
    assert sql_text in text and "metadata" not in text
    assert values(params) == [bound]
    assert compiled({"document_id": "doc-1"})[0] == '(("c".document_id = %(filter_0)s))'


def test_document_id_between_and_exists():
    text, params = compiled({"document_id": {"$between": ["a", "c"]}})
    assert '"c".document_id BETWEEN %(filter_0)s AND %(filter_1)s' in text and values(params) == ["a", "c"]
    assert compiled({"document_id": {"$exists": True}}) == ("(true)", {})
    assert compiled({"document_id": {"$exists": False}}) == ("(false)", {})


@pytest.mark.parametrize(
    "spec",
    [
        {"document_id": 7},
        {"document_id": {"$in": ["a", 7]}},
        {"document_id": {"$gt": 7}},
        {"document_id": {"$between": [1, 2]}},
        {"document_id": {"$like": None}},
        {"document_id": {"$exists": "yes"}},
        {"document_id": {"$contains": "a"}},
    ],
)
def test_document_id_takes_strings_and_refuses_anything_else_rather_than_matching_nothing(spec):
    with pytest.raises(InvalidFilter, match="document_id"):
        compile_filter(spec, TABLE)


@pytest.mark.parametrize(
    "spec",
    [
        {"year": {"$between": [2020]}},
        {"year": {"$between": [1, 2, 3]}},
        {"year": {"$between": [1, "z"]}},
        {"year": {"$between": [True, 2]}},
        {"year": {"$between": "2020..2023"}},
        {"year": {"$between": [None, 2]}},
        {"title": {"$like": 5}},
        {"title": {"$ilike": ["a%"]}},
        {"$not": []},
        {"$not": {}},
        {"$not": "lang"},
        {"$not": [1]},
    ],
)
def test_operands_of_the_new_operators_of_the_wrong_type_are_rejected(spec):
    with pytest.raises(InvalidFilter):
        compile_filter(spec, TABLE)


def test_an_unknown_operator_is_refused_with_every_operator_and_combinator_listed():
    with pytest.raises(InvalidFilter) as on_key:
        compile_filter({"year": {"$regex": "x"}}, TABLE)
    with pytest.raises(InvalidFilter) as at_top:
        compile_filter({"$nor": [{"a": 1}]}, TABLE)
    for op in (*OPERATORS, "$between", "$like", "$ilike"):
        assert op in str(on_key.value) and op in str(at_top.value)
    for combinator in ("$and", "$or", "$not"):
        assert combinator in str(at_top.value)


def test_between_counts_two_values_and_not_counts_only_what_it_negates():
    assert check_filter({"year": {"$between": [1, 2]}}) == 2
    assert check_filter({"$not": {"a": 1, "b": {"$like": "x%"}}}) == 2
    assert check_filter({"$not": [{"a": 1}, {"document_id": {"$in": ["x", "y", "z"]}}]}) == 4
    with pytest.raises(LimitExceeded, match="1001 values"):
        compile_filter({"$not": {"$or": [{"n": i} for i in range(1001)]}}, TABLE, max_values=1000)


def test_not_nested_thousands_deep_is_refused_as_too_deep():
    spec: dict[str, object] = {"a": 1}
    for _ in range(5000):
        spec = {"$not": spec}
    with pytest.raises(InvalidFilter, match=f"deeper than {MAX_DEPTH}"):
        compile_filter(spec, TABLE)


# --- limits: checked before compiling, so PostgreSQL's own limits are never met as a database error ---------


def or_of(count: int) -> dict[str, object]:
    return {"$or": [{"n": i} for i in range(count)]}


def compiled_with(spec: object, **limits: int) -> tuple[str, dict[str, object]]:
    statement, params = compile_filter(spec, TABLE, **limits)  # type: ignore[arg-type]
    return statement.as_string(None), params


def test_a_filter_over_the_limit_is_refused_naming_its_count_and_the_limit():
    with pytest.raises(LimitExceeded) as caught:
        compile_filter(or_of(1001), TABLE, max_values=1000)
    assert "1001 values" in str(caught.value) and "limit of 1000" in str(caught.value)
    assert "MAX_FILTER_VALUES" in str(caught.value)


def test_a_filter_at_the_limit_compiles():
    text, params = compiled_with(or_of(1000), max_values=1000)
    assert len(params) == 1000 and text.count(" OR ") == 999


def test_every_element_of_an_in_list_counts_as_a_value():
    spec = {"topic": {"$in": list(range(600))}, "lang": {"$nin": list(range(400))}, "year": {"$gte": 1}}
    assert check_filter(spec) == 1001
    with pytest.raises(LimitExceeded, match="1001 values"):
        compile_filter(spec, TABLE, max_values=1000)
    assert check_filter({"topic": {"$in": []}}) == 1  # an empty list still binds its key


def test_every_element_of_a_contains_list_counts_as_a_value_and_an_eq_array_as_one():
    assert check_filter({"tags": {"$contains": ["a", "b", "c"]}}) == 3
    assert check_filter({"tags": {"$contains": "a"}, "meta": {"$contains": {"x": 1, "y": 2}}}) == 2
    assert check_filter({"tags": {"$contains": []}}) == 1
    assert check_filter({"tags": ["a", "b", "c"], "other": {"$eq": ["a", "b"]}}) == 2
    with pytest.raises(LimitExceeded, match="1001 values"):
        compile_filter({"tags": {"$contains": list(range(1000))}, "lang": "en"}, TABLE, max_values=1000)


def test_without_a_setting_the_hard_ceiling_applies_and_no_setting_can_raise_it():
    with pytest.raises(LimitExceeded, match=f"{HARD_MAX_VALUES + 1} values.*limit of {HARD_MAX_VALUES}"):
        compile_filter(or_of(HARD_MAX_VALUES + 1), TABLE)
    with pytest.raises(LimitExceeded, match=f"limit of {HARD_MAX_VALUES}"):
        compile_filter(or_of(HARD_MAX_VALUES + 1), TABLE, max_values=1_000_000)


def test_a_filter_at_the_hard_ceiling_binds_far_fewer_parameters_than_postgres_accepts():
    # the operators that bind most: two parameters (key and value) per value
    ops = [
        {"$ne": "x"},
        {"$gt": 1},
        {"$in": ["a"]},
        {"$exists": True},
        "plain",
        ["an", "array"],
        {"$contains": "a"},
        {"$like": "a%"},
        {"$between": [1, 2]},
    ]
    spec = {"$or": [{"$not": {f"k{i}": ops[i % len(ops)]}} for i in range(HARD_MAX_VALUES // 2)]}
    spec["$or"] += [{"document_id": {"$eq": "d"}}] * (HARD_MAX_VALUES - check_filter(spec))
    _, params = compile_filter(spec, TABLE)
    assert len(params) <= 2 * HARD_MAX_VALUES < 65_535


def test_a_key_over_the_limit_is_refused_and_one_at_the_limit_compiles():
    compile_filter({"k" * MAX_KEY_CHARS: 1}, TABLE)
    with pytest.raises(LimitExceeded, match=f"{MAX_KEY_CHARS + 1} characters.*limit of {MAX_KEY_CHARS}"):
        compile_filter({"$or": [{"a": 1}, {"k" * (MAX_KEY_CHARS + 1): {"$exists": True}}]}, TABLE)


def test_a_filter_whose_strings_are_over_the_size_limit_is_refused():
    compile_filter({"a": "x" * (MAX_FILTER_CHARS - 1)}, TABLE)  # its key and value: exactly the limit
    with pytest.raises(LimitExceeded, match=f"{MAX_FILTER_CHARS + 1} characters.*limit of {MAX_FILTER_CHARS}"):
        compile_filter({"a": {"$in": ["x" * (MAX_FILTER_CHARS - 1), "y"]}}, TABLE)


def test_a_filter_nested_thousands_deep_is_refused_as_too_deep_not_a_crash():
    spec: dict[str, object] = {"a": 1}
    for _ in range(5000):
        spec = {"$and": [spec]}
    with pytest.raises(InvalidFilter, match=f"deeper than {MAX_DEPTH}"):
        compile_filter(spec, TABLE)


def test_limits_are_input_errors():
    assert issubclass(LimitExceeded, InputError)
