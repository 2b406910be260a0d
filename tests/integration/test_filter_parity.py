"""The filter language selects what langchain-postgres' `PGVectorStore` selects, except where documented.

The same documents go into a hybrid-rag collection and into a `PGVectorStore` table of its
own, and every filter of the table runs through both; the ids must be equal, or differ by
exactly the documents the row names (the differences `retriever.filters` documents).

`PGVectorStore` (v2) filters metadata in two set-ups, and both run:

- `json`: every key in its JSON metadata column (`metadata_columns=[]`), the way it opens a
  hybrid-rag chunk table. Its SQL reads `metadata ->> key` and casts that text to the
  operand's Python type, so each key holds one type here (a key that mixes types fails its
  numeric filters with a database error; one row pins that).
- `columns`: the scalar keys in typed `metadata_columns` (TEXT, INTEGER, DOUBLE PRECISION,
  BOOLEAN), as its documentation sets filtering up, and the arrays in the JSON column.
  `$like` on a number or boolean column is a type error there.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_postgres import Column, PGEngine, PGVectorStore
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from ingest import ChunkingConfig, SourceDocument
from retriever import Engine
from retriever.connections import open_primary
from retriever.results import SearchParams
from retriever.store.collections import drop_collection
from retriever.store.database import primary_dsn

QUERY = "shared filter words"

# strings (with case), integers, floats, booleans, arrays, JSON nulls and missing keys; one type per key
DOCUMENTS: dict[str, dict[str, Any]] = {
    "d01": {"topic": "coffee", "label": "Espresso basics", "year": 2021, "price": 2.5, "draft": False,
            "tags": ["brew", "espresso"]},
    "d02": {"topic": "coffee", "label": "espresso at home", "year": 2023, "price": 3.0, "draft": True,
            "tags": ["brew"]},
    "d03": {"topic": "Coffee", "label": "Cold brew", "year": 2024, "price": 4.75, "tags": []},
    "d04": {"topic": "tea", "label": "Green tea", "year": 2019, "price": 1.5, "draft": False, "tags": ["tea"]},
    "d05": {"topic": "tea", "label": "100% Oolong", "year": 2020, "draft": True, "tags": ["tea", "oolong"]},
    "d06": {"topic": "cocoa", "label": "Hot_chocolate", "price": 2.0, "tags": ["sweet"]},
    "d07": {"topic": None, "label": "Untitled", "year": 2022, "price": 10.25, "draft": False},
    "d08": {"label": "Water", "year": None, "price": 0.0, "draft": False, "tags": ["plain"]},
    "d09": {"topic": "coffee", "year": 2018, "price": 2.0, "draft": True, "tags": None},
    "d10": {"topic": "juice", "label": "Orange JUICE", "year": 2025, "price": 3.5, "tags": ["fresh", "citrus"]},
    "d11": {"topic": "tea", "label": "Builder's brew", "year": 2021, "price": 1.0, "tags": "brew"},
    "d12": {},
}  # fmt: skip

COLUMNS = [
    Column("topic", "TEXT"),
    Column("label", "TEXT"),
    Column("year", "INTEGER"),
    Column("price", "DOUBLE PRECISION"),
    Column("draft", "BOOLEAN"),
]
SETUPS = ("json", "columns")


def no_value(key: str) -> Callable[[dict[str, Any]], bool]:
    """Documents whose `key` is missing or null: PGVectorStore's comparisons are NULL there."""
    return lambda m: m.get(key) is None


def null(key: str) -> Callable[[dict[str, Any]], bool]:
    """Documents holding a JSON null under `key`: a present key here, an absent one for PGVectorStore."""
    return lambda m: key in m and m[key] is None


@dataclass(frozen=True)
class Case:
    filter: dict[str, Any]
    ours_only: Callable[[dict[str, Any]], bool] | None = None  # what we select beyond PGVectorStore
    theirs_only: Callable[[dict[str, Any]], bool] | None = None  # what PGVectorStore selects beyond us
    fails_in: tuple[str, ...] = ()  # set-ups where PGVectorStore's query fails (a cast or a type error)


CASES: dict[str, Case] = {
    "plain": Case({"topic": "coffee"}),
    "$eq string, case-sensitive": Case({"topic": {"$eq": "Coffee"}}),
    "$eq integer": Case({"year": {"$eq": 2021}}),
    "$eq float": Case({"price": {"$eq": 2.0}}),
    "$eq boolean": Case({"draft": {"$eq": True}}),
    "$ne string": Case({"topic": {"$ne": "coffee"}}, ours_only=no_value("topic")),
    "$ne boolean": Case({"draft": {"$ne": True}}, ours_only=no_value("draft")),
    "$lt": Case({"year": {"$lt": 2020}}),
    "$lte": Case({"year": {"$lte": 2020}}),
    "$gt float": Case({"price": {"$gt": 2.5}}),
    "$gte": Case({"year": {"$gte": 2023}}),
    "$gte string": Case({"topic": {"$gte": "d"}}),
    "$gte integer on floats": Case({"price": {"$gte": 3}}, fails_in=("json",)),  # '2.5'::INTEGER
    "$in strings": Case({"topic": {"$in": ["tea", "juice", "Tea"]}}),
    "$in integers": Case({"year": {"$in": [2019, 2024, 1999]}}),
    "$in on an array key": Case({"tags": {"$in": ["brew", "tea"]}}),  # the string "brew" only, no array
    "$nin strings": Case({"topic": {"$nin": ["coffee", "tea"]}}, ours_only=no_value("topic")),
    "$nin integers": Case({"year": {"$nin": [2021, 2022]}}, ours_only=no_value("year")),
    "$between integers": Case({"year": {"$between": [2020, 2023]}}),
    "$between floats": Case({"price": {"$between": [2.0, 3.5]}}),
    "$between strings": Case({"label": {"$between": ["Cold brew", "Hot_chocolate"]}}),
    "$like": Case({"label": {"$like": "%espresso%"}}),
    "$like wildcard": Case({"label": {"$like": "Hot_c%"}}),
    "$like escaped percent": Case({"label": {"$like": "100\\%%"}}),
    "$like on an integer": Case({"year": {"$like": "202%"}}, fails_in=("columns",)),
    "$like on a boolean": Case({"draft": {"$like": "t%"}}, fails_in=("columns",)),
    "$like on an array": Case({"tags": {"$like": "%brew%"}}),
    "$ilike": Case({"label": {"$ilike": "%ESPRESSO%"}}),
    "$ilike upper": Case({"label": {"$ilike": "orange juice"}}),
    "$exists true": Case({"topic": {"$exists": True}}, ours_only=null("topic")),
    "$exists false": Case({"year": {"$exists": False}}, theirs_only=null("year")),
    "$exists on an array key": Case({"tags": {"$exists": True}}, ours_only=null("tags")),
    "$and": Case({"$and": [{"topic": "coffee"}, {"draft": True}]}),
    "several keys": Case({"topic": "tea", "year": {"$gte": 2020}}),
    "$or": Case({"$or": [{"topic": "tea"}, {"price": {"$gt": 4.0}}]}),
    "$not": Case({"$not": {"topic": "coffee"}}, ours_only=no_value("topic")),
    "$not range": Case({"$not": {"year": {"$gte": 2022}}}, ours_only=no_value("year")),
    "$not list": Case(
        {"$not": [{"topic": "tea"}, {"draft": True}]},
        ours_only=lambda m: m.get("topic") != "tea" and m.get("draft") is not True and (
            m.get("topic") is None or m.get("draft") is None),
    ),
    "$not $like": Case({"$not": {"label": {"$like": "%e%"}}}, ours_only=no_value("label")),
    "$or of $and and $not": Case(
        {"$or": [{"$and": [{"year": {"$between": [2019, 2021]}}, {"draft": False}]},
                 {"$not": {"price": {"$lt": 10.0}}}]},
        ours_only=lambda m: m.get("price") is None and not (
            m.get("year") in (2019, 2020, 2021) and m.get("draft") is False),
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def ours(settings, fake_model) -> Iterator[Callable[[dict[str, Any]], set[str]]]:
    """The documents a filter selects in a hybrid-rag collection (a hybrid search: both legs)."""
    name = f"t_parity_{uuid.uuid4().hex[:8]}"
    engine = Engine(settings, model=fake_model)
    documents = [SourceDocument(d, f"{QUERY}, document {d}", None, "test", m) for d, m in DOCUMENTS.items()]
    engine.ingest(name, documents, ChunkingConfig())

    def select(spec: dict[str, Any]) -> set[str]:
        with open_primary(settings) as conn:
            params = SearchParams(k=100, candidates=100, filter=spec)
            return {hit.document_id for hit in engine.search(name, QUERY, params, conn=conn).hits}

    assert select({}) == set(DOCUMENTS)
    yield select
    with open_primary(settings) as conn:
        drop_collection(conn, name)


@pytest.fixture(scope="module", params=SETUPS)
def theirs(request, settings, fake_model) -> Iterator[tuple[str, Callable[[dict[str, Any]], set[str]]]]:
    """(set-up, the ids a filter selects in a PGVectorStore table of its own with the same documents)."""
    setup, table = request.param, f"pgvectorstore_parity_{uuid.uuid4().hex[:8]}"
    # every libpq parameter of our DSN (a socket folder as host included) goes to psycopg as is
    connect = {key: str(value) for key, value in conninfo_to_dict(primary_dsn(settings)).items()}
    pg_engine = PGEngine.from_connection_string(url=URL.create("postgresql+psycopg", query=connect))
    columns = COLUMNS if setup == "columns" else []
    typed = [Column(c.name, c.data_type) for c in columns]  # the engine renames what it is given
    pg_engine.init_vectorstore_table(table, 32, id_column=Column("langchain_id", "TEXT"), metadata_columns=typed)
    store = PGVectorStore.create_sync(
        pg_engine, embedding_service=fake_model.embeddings, table_name=table, metadata_columns=[c.name for c in columns]
    )
    store.add_documents(
        [Document(f"{QUERY}, document {d}", metadata=m) for d, m in DOCUMENTS.items()], ids=list(DOCUMENTS)
    )

    def select(spec: dict[str, Any]) -> set[str]:
        return {doc.id for doc in store.similarity_search(QUERY, k=100, filter=spec) if doc.id}

    assert select({"$or": [{"label": {"$like": "%"}}, {"label": {"$exists": False}}]}) == set(DOCUMENTS)
    yield setup, select
    asyncio.run(pg_engine.close())
    with open_primary(settings) as conn:
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier("public", table)))


def documents_where(predicate: Callable[[dict[str, Any]], bool] | None) -> set[str]:
    return {d for d, m in DOCUMENTS.items() if predicate and predicate(m)}


@pytest.mark.parametrize("case", list(CASES))
def test_filter_selects_what_pgvectorstore_selects_but_for_the_documented_differences(ours, theirs, case):
    setup, select_theirs = theirs
    spec = CASES[case]
    found = ours(spec.filter)
    assert found, "every case selects something, so an empty answer cannot agree by accident"
    if setup in spec.fails_in:
        with pytest.raises(DBAPIError):
            select_theirs(spec.filter)
        return
    expected = select_theirs(spec.filter)
    assert (found - expected, expected - found) == (documents_where(spec.ours_only), documents_where(spec.theirs_only))


def test_eq_and_ne_partition_the_collection_on_scalars_and_arrays(ours):
    """For every stored value (null, [] and arrays included) $eq and $ne split the documents in two."""
    wrong = []
    for key in ("topic", "label", "year", "price", "draft", "tags"):
        for value in [m[key] for m in DOCUMENTS.values() if key in m]:
            equal, not_equal = ours({key: {"$eq": value}}), ours({key: {"$ne": value}})
            if not equal or equal & not_equal or equal | not_equal != set(DOCUMENTS):
                wrong.append(f"{key} {value!r}: $eq {sorted(equal)}, $ne {sorted(not_equal)}")
    assert not wrong, "\n".join(wrong)


def test_every_operator_of_both_languages_is_in_the_table():
    used = set()
    stack: list[Any] = [case.filter for case in CASES.values()]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            used.update(key for key in item if key.startswith("$"))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    expected = "$eq $ne $lt $lte $gt $gte $in $nin $between $like $ilike $exists $and $or $not".split()
    assert set(expected) <= used
