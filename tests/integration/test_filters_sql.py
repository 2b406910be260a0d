"""Every filter operator selects exactly the matching chunks, inside both legs, in every mode."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from litestar.testing import AsyncTestClient

from hybrid_rag.cli import main
from ingest import ChunkingConfig, SourceDocument
from retriever import Engine
from retriever.connections import open_primary
from retriever.http import create_app
from retriever.results import MODES, SearchParams
from retriever.settings import get_settings
from retriever.store.collections import drop_collection

LANGS = ["en", "de", "fr"]


def metadata(i: int) -> dict[str, Any]:
    """Varied metadata: a string, a number, a string date, an optional key, one mistyped year."""
    values: dict[str, Any] = {"lang": LANGS[i % 3], "year": 2010 + i, "day": f"2024-01-{i + 1:02d}"}
    if i % 4 == 0:
        values["author"] = f"author {i}"
    if i == 5:
        values["year"] = "2099"  # a string: range filters on numbers must not match it
    return values


DOCUMENTS = {f"f{i:02d}": metadata(i) for i in range(24)}

# (filter, which documents' metadata must match); keys absent from a document match $ne and $nin.
CASES: dict[str, tuple[dict[str, Any], Callable[[dict[str, Any]], bool]]] = {
    "plain": ({"lang": "de"}, lambda m: m["lang"] == "de"),
    "$eq": ({"lang": {"$eq": "fr"}}, lambda m: m["lang"] == "fr"),
    "$ne": ({"lang": {"$ne": "en"}}, lambda m: m["lang"] != "en"),
    "$ne absent key": ({"author": {"$ne": "author 0"}}, lambda m: m.get("author") != "author 0"),
    "$in": ({"lang": {"$in": ["en", "fr"]}}, lambda m: m["lang"] in ("en", "fr")),
    "$nin": ({"author": {"$nin": ["author 4", "author 8"]}}, lambda m: m.get("author") not in ("author 4", "author 8")),
    "$gt": ({"year": {"$gt": 2025}}, lambda m: isinstance(m["year"], int) and m["year"] > 2025),
    "$gte": ({"year": {"$gte": 2025}}, lambda m: isinstance(m["year"], int) and m["year"] >= 2025),
    "$lt": ({"year": {"$lt": 2013}}, lambda m: isinstance(m["year"], int) and m["year"] < 2013),
    "$lte": ({"year": {"$lte": 2013}}, lambda m: isinstance(m["year"], int) and m["year"] <= 2013),
    "$gte on strings": ({"day": {"$gte": "2024-01-20"}}, lambda m: m["day"] >= "2024-01-20"),
    "range": ({"year": {"$gte": 2012, "$lt": 2016}}, lambda m: isinstance(m["year"], int) and 2012 <= m["year"] < 2016),
    "$exists true": ({"author": {"$exists": True}}, lambda m: "author" in m),
    "$exists false": ({"author": {"$exists": False}}, lambda m: "author" not in m),
    "$and": (
        {"$and": [{"lang": "en"}, {"author": {"$exists": True}}]},
        lambda m: m["lang"] == "en" and "author" in m,
    ),
    "$or": (
        {"$or": [{"lang": "de"}, {"year": {"$lt": 2012}}]},
        lambda m: m["lang"] == "de" or (isinstance(m["year"], int) and m["year"] < 2012),
    ),
    "keys and": ({"lang": "en", "year": {"$gt": 2015}}, lambda m: m["lang"] == "en" and m["year"] > 2015),
    "$between": (
        {"year": {"$between": [2012, 2015]}},
        lambda m: isinstance(m["year"], int) and 2012 <= m["year"] <= 2015,
    ),
    "$between on strings": (
        {"day": {"$between": ["2024-01-05", "2024-01-09"]}},
        lambda m: "05" <= m["day"][-2:] <= "09",
    ),
    "$like": ({"author": {"$like": "author 1%"}}, lambda m: m.get("author", "").startswith("author 1")),
    "$like on a number": ({"year": {"$like": "201_"}}, lambda m: isinstance(m["year"], int) and m["year"] < 2020),
    "$like is case-sensitive": ({"lang": {"$like": "E%"}}, lambda m: False),
    "$ilike": ({"lang": {"$ilike": "E%"}}, lambda m: m["lang"] == "en"),
    "$not": ({"$not": {"author": {"$exists": True}}}, lambda m: "author" not in m),
    "$not absent key": ({"$not": {"author": "author 0"}}, lambda m: m.get("author") != "author 0"),
    "$not unknown range": (
        {"$not": {"year": {"$gt": 2025}}},
        lambda m: not (isinstance(m["year"], int) and m["year"] > 2025),
    ),
    "$not list": (
        {"$not": [{"lang": "en"}, {"year": {"$lt": 2015}}]},
        lambda m: m["lang"] != "en" and not (isinstance(m["year"], int) and m["year"] < 2015),
    ),
    "$not beside a key": (
        {"lang": "de", "$not": {"author": {"$like": "%"}}},
        lambda m: m["lang"] == "de" and "author" not in m,
    ),
    "no match": ({"lang": "xx"}, lambda m: False),
    "empty object": ({}, lambda m: True),
}


@pytest.fixture(scope="module")
def filtered_collection(settings, fake_model) -> Iterator[str]:
    """24 one-chunk documents that all share the query's words, so only the filter decides."""
    name = f"t_filters_{uuid.uuid4().hex[:8]}"
    documents = [
        SourceDocument(document_id, f"shared filter words, document {document_id}", None, "test", values)
        for document_id, values in DOCUMENTS.items()
    ]
    Engine(settings, model=fake_model).ingest(name, documents, ChunkingConfig())
    yield name
    with open_primary(settings) as conn:
        drop_collection(conn, name)


def test_every_document_matches_the_query_without_a_filter(settings, fake_model, filtered_collection):
    with open_primary(settings) as conn:
        for mode in MODES:
            params = SearchParams(k=100, mode=mode, candidates=100)
            hits = (
                Engine(settings, model=fake_model)
                .search(filtered_collection, "shared filter words", params, conn=conn)
                .hits
            )
            assert {h.document_id for h in hits} == set(DOCUMENTS), mode


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", list(CASES))
def test_filter_returns_exactly_the_matching_chunks(settings, fake_model, filtered_collection, case, mode):
    spec, matches = CASES[case]
    expected = {document_id for document_id, values in DOCUMENTS.items() if matches(values)}
    with open_primary(settings) as conn:
        params = SearchParams(k=100, mode=mode, filter=spec, candidates=100)
        hits = (
            Engine(settings, model=fake_model)
            .search(filtered_collection, "shared filter words", params, conn=conn)
            .hits
        )
    assert {h.document_id for h in hits} == expected
    assert len(hits) == len(expected)


# (filter on the document_id column, the ids it selects): every chunk has one, a string
DOCUMENT_ID_CASES: dict[str, tuple[dict[str, Any], Callable[[str], bool]]] = {
    "plain": ({"document_id": "f03"}, lambda d: d == "f03"),
    "$ne": ({"document_id": {"$ne": "f03"}}, lambda d: d != "f03"),
    "$in": ({"document_id": {"$in": ["f01", "f02", "nope"]}}, lambda d: d in ("f01", "f02")),
    "$nin": ({"document_id": {"$nin": ["f01", "f02"]}}, lambda d: d not in ("f01", "f02")),
    "$gte": ({"document_id": {"$gte": "f20"}}, lambda d: d >= "f20"),
    "$between": ({"document_id": {"$between": ["f05", "f07"]}}, lambda d: "f05" <= d <= "f07"),
    "$like": ({"document_id": {"$like": "f1_"}}, lambda d: d.startswith("f1")),
    "$ilike": ({"document_id": {"$ilike": "F2%"}}, lambda d: d.startswith("f2")),
    "$exists": ({"document_id": {"$exists": True}}, lambda d: True),
    "with metadata": ({"document_id": {"$in": ["f00", "f01"]}, "lang": "en"}, lambda d: d == "f00"),
    "$not": ({"$not": {"document_id": {"$like": "f0%"}}}, lambda d: not d.startswith("f0")),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", list(DOCUMENT_ID_CASES))
def test_document_id_filters_select_by_the_chunks_document(settings, fake_model, filtered_collection, case, mode):
    spec, matches = DOCUMENT_ID_CASES[case]
    expected = {document_id for document_id in DOCUMENTS if matches(document_id)}
    assert expected  # every case selects something, so an empty answer cannot pass
    with open_primary(settings) as conn:
        params = SearchParams(k=100, mode=mode, filter=spec, candidates=100)
        hits = (
            Engine(settings, model=fake_model)
            .search(filtered_collection, "shared filter words", params, conn=conn)
            .hits
        )
    assert {h.document_id for h in hits} == expected


def test_delete_where_takes_document_id_filters(settings, fake_model, collection_name):
    engine = Engine(settings, model=fake_model)
    documents = [SourceDocument(d, f"words of {d}", None, "test", {"n": i}) for i, d in enumerate(["a1", "a2", "b1"])]
    engine.ingest(collection_name, documents, ChunkingConfig())
    assert engine.delete_where(collection_name, {"document_id": {"$like": "a%"}}) == 2
    assert [d.id for d in engine.documents(collection_name).documents] == ["b1"]


# the edges pass the filter through: the same language over HTTP and from the CLI
EDGE_FILTER = {"$not": {"document_id": {"$between": ["f05", "f20"]}}, "year": {"$like": "201%"}}
EDGE_MATCHES = {"f00", "f01", "f02", "f03", "f04"}  # years 2010-2014; f05 (a string year) and on left out


async def test_http_search_takes_every_operator_and_refuses_a_bad_one_with_a_422(
    settings, fake_model, filtered_collection
):
    key = "filter-key-0123456789"
    app = create_app(dataclasses.replace(settings, api_keys=(key,)), model=fake_model)
    path, auth = f"/v1/collections/{filtered_collection}/search", {"Authorization": f"Bearer {key}"}
    async with AsyncTestClient(app) as client:
        found = await client.post(
            path, json={"query": "shared filter words", "k": 100, "filter": EDGE_FILTER}, headers=auth
        )
        bad = await client.post(path, json={"query": "x", "filter": {"year": {"$between": [2020]}}}, headers=auth)
    assert found.status_code == 200, found.text
    assert {hit["document_id"] for hit in found.json()["results"]} == EDGE_MATCHES
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    assert "$between on 'year' takes [low, high]" in bad.json()["detail"]


def test_cli_search_takes_every_operator_and_refuses_a_bad_one_in_one_line(filtered_collection):
    def search(spec: dict[str, Any]):
        get_settings.cache_clear()
        try:
            args = ["search", "shared filter words", "-c", filtered_collection, "--mode", "text", "-k", "100"]
            return CliRunner().invoke(main, [*args, "--filter", json.dumps(spec), "--json"])
        finally:
            get_settings.cache_clear()

    found, bad = search(EDGE_FILTER), search({"$not": []})
    assert found.exit_code == 0, found.output
    assert {hit["document_id"] for hit in json.loads(found.stdout)["results"]} == EDGE_MATCHES
    assert bad.exit_code == 2 and "$not takes a filter" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_filter_applies_inside_each_leg_so_hybrid_ranks_only_matching_chunks(settings, fake_model, filtered_collection):
    spec = {"lang": "fr"}
    expected = sum(1 for values in DOCUMENTS.values() if values["lang"] == "fr")
    with open_primary(settings) as conn:
        params = SearchParams(k=100, filter=spec, candidates=100)
        hits = (
            Engine(settings, model=fake_model)
            .search(filtered_collection, "shared filter words", params, conn=conn)
            .hits
        )
    # ranks inside each leg count only matching chunks: 1..n without gaps
    assert sorted(h.vector_rank for h in hits) == list(range(1, expected + 1))
    assert sorted(h.text_rank for h in hits) == list(range(1, expected + 1))


def _plans(conn) -> tuple[int, int]:
    """(generic, custom) plans of the connection's prepared search statement."""
    row = conn.execute(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE 'WITH%vector_leg%'"
    ).fetchone()
    return (row[0], row[1]) if row else (0, 0)


def test_a_filtered_search_is_planned_for_its_values_even_where_plans_are_reused(
    settings, fake_model, filtered_collection
):
    def plans_after_eight(params_of) -> tuple[int, int]:
        with open_primary(settings) as conn:
            conn.execute("SET plan_cache_mode = force_generic_plan")  # a server that reuses plans
            for year in range(2010, 2018):
                Engine(settings, model=fake_model).search(
                    filtered_collection, "shared filter words", params_of(year), conn=conn
                )
            return _plans(conn)

    generic, _custom = plans_after_eight(lambda year: SearchParams())
    assert generic > 0  # the statement is prepared and its plan reused

    generic, custom = plans_after_eight(lambda year: SearchParams(filter={"year": {"$gte": year}}))
    assert generic == 0 and custom > 0


# --- $eq is exact JSON equality and $ne its complement, for every kind of value; $contains is containment ----

MISSING = object()  # a document without the key

# the value of "tags" in each document; "a" and "b" are the reported case
SHAPES: dict[str, Any] = {
    "a": ["brew", "espresso"],
    "b": ["brew"],
    "reversed": ["espresso", "brew"],
    "repeated": ["brew", "brew"],
    "nested": [["brew"]],
    "empty": [],
    "null-in-array": [None],
    "scalar": "brew",
    "one": 1,
    "one-point-zero": 1.0,
    "one-as-string": "1",
    "true": True,
    "null": None,
    "object": {"kind": "faq", "n": 1},
    "empty-object": {},
    "missing": MISSING,
}

# every stored value, and some that no document holds exactly
VALUES: list[Any] = [value for value in SHAPES.values() if value is not MISSING] + [
    ["espresso"],
    [["brew"], "x"],
    {"kind": "faq"},
    {"n": 1, "kind": "faq"},
    "espresso",
    0,
    False,
]


def json_equal(left: Any, right: Any) -> bool:
    """JSON equality: a boolean is no number, numbers compare by value, arrays in order, objects by key."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, int | float) or isinstance(right, int | float):
        return isinstance(left, int | float) and isinstance(right, int | float) and left == right
    if isinstance(left, list) or isinstance(right, list):
        return (
            isinstance(left, list)
            and isinstance(right, list)
            and len(left) == len(right)
            and all(json_equal(x, y) for x, y in zip(left, right, strict=True))
        )
    if isinstance(left, dict) or isinstance(right, dict):
        return (
            isinstance(left, dict)
            and isinstance(right, dict)
            and left.keys() == right.keys()
            and all(json_equal(left[k], right[k]) for k in left)
        )
    return left == right  # strings and null


@pytest.fixture(scope="module")
def shapes_collection(settings, fake_model) -> Iterator[str]:
    name = f"t_filter_shapes_{uuid.uuid4().hex[:8]}"
    documents = [
        SourceDocument(
            document_id,
            f"shared filter words, document {document_id}",
            None,
            "test",
            {"n": 0} if value is MISSING else {"tags": value},
        )
        for document_id, value in SHAPES.items()
    ]
    Engine(settings, model=fake_model).ingest(name, documents, ChunkingConfig())
    yield name
    with open_primary(settings) as conn:
        drop_collection(conn, name)


@pytest.fixture(scope="module")
def matching(settings, fake_model, shapes_collection) -> Iterator[Callable[[dict[str, Any]], set[str]]]:
    """The documents of the shapes collection a filter selects, in a hybrid search (both legs)."""
    engine = Engine(settings, model=fake_model)
    with open_primary(settings) as conn:

        def search(spec: dict[str, Any]) -> set[str]:
            params = SearchParams(k=100, mode="hybrid", filter=spec, candidates=100)
            hits = engine.search(shapes_collection, "shared filter words", params, conn=conn).hits
            return {h.document_id for h in hits}

        assert search({}) == set(SHAPES)
        yield search


def test_eq_on_an_array_is_equality_not_containment_so_eq_and_ne_never_both_match(matching):
    # the report: a holds ["brew", "espresso"], b holds ["brew"]
    equal, not_equal = matching({"tags": {"$eq": ["brew"]}}), matching({"tags": {"$ne": ["brew"]}})
    assert "b" in equal and "a" not in equal
    assert "a" in not_equal and "b" not in not_equal
    assert matching({"tags": ["brew"]}) == equal == {"b"}
    assert {"a", "b"} <= matching({"tags": {"$contains": ["brew"]}})


def test_eq_and_ne_partition_the_collection_for_every_value(matching):
    """For each value v: {"tags": {"$eq": v}} selects exactly the JSON-equal documents (as does
    {"tags": v}), {"tags": {"$ne": v}} all the others, missing key included."""
    everything = set(SHAPES)
    wrong = []
    for value in VALUES:
        expected = {d for d, stored in SHAPES.items() if stored is not MISSING and json_equal(stored, value)}
        equal, plain, not_equal = (
            matching({"tags": {"$eq": value}}),
            matching({"tags": value}),
            matching({"tags": {"$ne": value}}),
        )
        if equal != expected or plain != expected or not_equal != everything - expected:
            wrong.append(f"{value!r}: $eq {sorted(equal)}, plain {sorted(plain)}, $ne {sorted(not_equal)}")
    assert not wrong, "\n".join(wrong)


def test_not_and_its_filter_partition_the_collection_for_every_value(matching):
    everything = set(SHAPES)
    wrong = []
    for value in VALUES:
        for spec in ({"tags": value}, {"tags": {"$ne": value}}, {"tags": {"$contains": value}}):
            inside, outside = matching(spec), matching({"$not": spec})
            if inside & outside or inside | outside != everything:
                wrong.append(f"{spec!r}: {sorted(inside)} and $not {sorted(outside)}")
    assert not wrong, "\n".join(wrong)


# what $like reads: the value's text as `->>` gives it, whatever its JSON type; a null or missing key never
LIKE: list[tuple[dict[str, Any], set[str]]] = [
    ({"$like": "%brew%"}, {"a", "b", "reversed", "repeated", "nested", "scalar"}),
    ({"$like": "brew"}, {"scalar"}),
    ({"$like": "[%]"}, {"a", "b", "reversed", "repeated", "nested", "empty", "null-in-array"}),
    ({"$like": "1"}, {"one", "one-as-string"}),  # 1.0 reads "1.0"
    ({"$like": "1%"}, {"one", "one-point-zero", "one-as-string"}),
    ({"$like": "true"}, {"true"}),
    ({"$like": "TRUE"}, set()),
    ({"$ilike": "TRUE"}, {"true"}),
    ({"$ilike": "%FAQ%"}, {"object"}),
    ({"$like": "%"}, set(SHAPES) - {"null", "missing"}),
    ({"$like": "null"}, set()),
]


@pytest.mark.parametrize(("condition", "expected"), LIKE)
def test_like_matches_the_text_of_any_json_value_but_never_a_null_or_missing_key(matching, condition, expected):
    assert matching({"tags": condition}) == expected


def test_between_is_gte_and_lte_together(matching):
    for low, high in ([0, 1], [1, 1], [1.0, 2], ["b", "c"], ["1", "1"], [2, 1]):
        assert matching({"tags": {"$between": [low, high]}}) == matching({"tags": {"$gte": low, "$lte": high}})
    assert matching({"tags": {"$between": [0, 1]}}) == {"one", "one-point-zero"}


CONTAINS: list[tuple[Any, set[str]]] = [
    ("brew", {"a", "b", "reversed", "repeated"}),  # never the scalar "brew", nor ["brew"] nested one deeper
    (["brew"], {"a", "b", "reversed", "repeated"}),
    (["brew", "espresso"], {"a", "reversed"}),
    (["espresso", "brew", "brew"], {"a", "reversed"}),
    (["espresso"], {"a", "reversed"}),
    ([["brew"]], {"nested"}),
    ([], {"a", "b", "reversed", "repeated", "nested", "empty", "null-in-array"}),  # any array
    (None, {"null-in-array"}),
    ({"kind": "faq"}, {"object"}),
    ({}, {"object", "empty-object"}),  # any object
    (1, set()),
    ("latte", set()),
]


def test_contains_selects_arrays_holding_the_elements_and_objects_holding_the_pairs(matching):
    wrong = []
    for operand, expected in CONTAINS:
        found = matching({"tags": {"$contains": operand}})
        if found != expected:
            wrong.append(f"$contains {operand!r}: {sorted(found)}, expected {sorted(expected)}")
    assert not wrong, "\n".join(wrong)
