"""Past one machine: a collection on a real 3-node Citus cluster answers as the same collection on one node.

The cluster (`tests/citus.py`, started by `tools/citus-cluster.sh`) and the single node (Debian's
plain PostgreSQL 15 with the same pgvector build, `tests/postgres15.py`) get the same SciFact
abstracts in the same order. Specification:

- a collection on a coordinator is distributed: its chunks hash-sharded by anchor (one per
  shard; a document's chunks share the one its id picks), its documents and posting blocks
  colocated with them, each shard's blocks holding its own chunks and the
  BM25 leg reading them there; the document frequencies a reference table; the registry and
  topics on the coordinator (`retriever.store.citus`); a collection created before Citus was
  installed stays on the coordinator and keeps working beside sharded ones;
- exact searches (exact BM25, and every index scan off so vectors are ranked exactly) return
  the same rows, id for id, score for score (1e-9) and rank for rank, over 60 queries in each
  mode, with and without filters; bounded BM25 and HNSW stay within the single node's tolerances;
- a replaced or deleted document leaves no chunk, document row or posting on any worker's
  shard, at once;
- a bulk load, `maintain`, `like=`, collapse, filters, topics, a re-embed, the HTTP API, the
  LangChain retriever and vector store work there; a backup restores onto the cluster and off
  it with the same collection state and exact results;
- a stopped worker is a 503 / one line and exit 2, and the next search after it restarts works;
  an ingest it breaks leaves nothing half-written.

The embeddings are the deterministic fake (rankings are compared, not judged).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from click.testing import CliRunner
from conftest import HashEmbeddings, collection_state_of
from litestar.testing import TestClient
from psycopg import sql
from tombstones import delete_as_before_m010

import retriever.query
import retriever.store.postings
import retriever.store.writer
from hybrid_rag.cli import main
from retriever import Engine, HybridRetriever, HybridVectorStore, SearchParams, VectorIndex
from retriever.connections import open_primary
from retriever.embeddings import EmbeddingModel
from retriever.errors import CollectionNotFound, DatabaseUnavailable
from retriever.http import create_app
from retriever.query import REGISTRY, build_search
from retriever.search_settings import session_settings
from retriever.settings import Settings, get_settings
from retriever.store.citus import anchor_of
from retriever.store.migrations import migrate
from retriever.store.plans import Copy
from retriever.store.tables import Collection

pytest_plugins = ["postgres15", "citus"]

SCIFACT = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "scifact"
DOCUMENTS = 600
QUERIES = 60
FILTERS: tuple[dict[str, Any] | None, ...] = (None, {"bucket": 1}, {"year": {"$gte": 2008}})
TOLERANCE = 1e-9

# Beside the vendored sources the cluster is built from: where the cluster can be built, these run.
assert (SCIFACT / "corpus.jsonl.gz").is_file(), f"the shared SciFact collection is not at {SCIFACT}"


@pytest.fixture(scope="module")
def model() -> EmbeddingModel:
    return EmbeddingModel("test:hash-64", HashEmbeddings(64))


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    """The first abstracts of SciFact, with metadata to filter on."""
    found = []
    with gzip.open(SCIFACT / "corpus.jsonl.gz", "rt", encoding="utf-8") as lines:
        for position, line in zip(range(DOCUMENTS), lines, strict=False):
            row = json.loads(line)
            metadata = {"bucket": position % 4, "year": 2000 + position % 10}
            found.append({"id": row["_id"], "text": row["text"], "title": row["title"], "metadata": metadata})
    return found


@pytest.fixture(scope="module")
def queries() -> list[str]:
    with open(SCIFACT / "queries.jsonl", encoding="utf-8") as lines:
        return [json.loads(line)["text"] for line, _ in zip(lines, range(QUERIES), strict=False)]


@dataclass(frozen=True)
class Pair:
    """One collection, loaded alike on the cluster and on a single node."""

    name: str
    cluster: Settings
    single: Settings


def _load(settings: Settings, name: str, model: EmbeddingModel, records: list[dict[str, Any]]) -> None:
    """One document first, the rest after: written by one writer in document order, so chunk keys match."""
    engine = Engine(settings, model=model)
    engine.ingest_records(name, records[:1], "scifact")
    engine.ingest_records(name, records[1:], "scifact")


def _drop(settings: Settings, name: str) -> None:
    Engine(settings).drop_collection(name)


@pytest.fixture(scope="module")
def pair(citus, postgres15_settings, model, records) -> Iterator[Pair]:
    name = f"t_citus_{uuid.uuid4().hex[:8]}"
    for settings in (citus.settings, postgres15_settings):
        _load(settings, name, model, records)
    yield Pair(name, citus.settings, postgres15_settings)
    for settings in (citus.settings, postgres15_settings):
        _drop(settings, name)


@contextlib.contextmanager
def _searching(
    settings: Settings, name: str, params: SearchParams, query: str, embedding: np.ndarray | None
) -> Iterator[tuple[psycopg.Connection, Collection, sql.Composed, dict[str, Any]]]:
    """A transaction set up as the engine sets one up for this search, with the search statement and its values."""
    with open_primary(settings) as conn, conn.transaction():
        *row, iterative_scan = conn.execute(REGISTRY, {"name": name}).fetchone()
        collection = Collection(*row)
        for statement, values in session_settings(
            params, settings, iterative_scan=iterative_scan, collection=collection
        ):
            conn.execute(statement, values)
        yield conn, collection, *build_search(collection, params, query=query, embedding=embedding)


def exact_rows(settings: Settings, name: str, params: SearchParams, query: str, embedding: np.ndarray) -> list[tuple]:
    """The search statement's rows with exact BM25 and no index scan (vectors ranked exactly), as the engine sets up."""
    with _searching(settings, name, params, query, embedding) as (conn, _, statement, values):
        conn.execute("SET LOCAL enable_indexscan = off")
        conn.execute("SET LOCAL enable_bitmapscan = off")
        return conn.execute(statement, values).fetchall()


def assert_same_rows(cluster: list[tuple], single: list[tuple], context: object) -> None:
    """Id, document, ranks equal; scores equal to TOLERANCE."""
    assert [(r[0], r[1], r[5], r[6]) for r in cluster] == [(r[0], r[1], r[5], r[6]) for r in single], context
    assert all(abs(a[4] - b[4]) <= TOLERANCE for a, b in zip(cluster, single, strict=True)), context


def test_citus_collections_are_sharded_by_document_anchor_with_blocks_beside_chunks_and_global_statistics(pair):
    collection = Engine(pair.cluster).collection(pair.name)
    assert collection.distributed and not Engine(pair.single).collection(pair.name).distributed
    name = f"hybrid_rag.{pair.name}"
    with open_primary(pair.cluster) as conn:
        placed = dict(
            conn.execute(
                """SELECT logicalrelid::text, partmethod::text || coalesce(':' || column_to_column_name(logicalrelid,
                          partkey), '') FROM pg_dist_partition WHERE logicalrelid::text LIKE 'hybrid_rag.%'"""
            ).fetchall()
        )
        sharded = [name, *(f"{name}__{side}" for side in ("documents", "postings"))]
        colocated = conn.execute(
            "SELECT count(DISTINCT colocationid) FROM pg_dist_partition WHERE logicalrelid = ANY(%s::regclass[])",
            (sharded,),
        ).fetchone()[0]
        anchored = conn.execute(
            "SELECT DISTINCT get_shard_id_for_distribution_column(%s::regclass, anchor) FROM unnest(%s::text[]) anchor",
            (name, collection.anchors),
        ).fetchall()
        shards = conn.execute(
            "SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = %s::regclass", (name,)
        ).fetchone()
        chunks = conn.execute(sql.SQL("SELECT document_id, anchor FROM {}").format(collection.table())).fetchall()
    assert {placed[table] for table in sharded} == {"h:anchor"} and colocated == 1
    assert placed[f"{name}__terms"] == "n"  # document frequencies: a reference table, global
    assert "hybrid_rag.collections" not in placed and "hybrid_rag.topics" not in placed  # on the coordinator
    assert len(collection.anchors) == len(anchored) == shards[0] >= 2  # one anchor per shard
    assert all(anchor == anchor_of(collection.anchors, document) for document, anchor in chunks)
    assert len({anchor for _, anchor in chunks}) == shards[0]  # the documents spread over every shard


def test_citus_each_shard_holds_the_posting_blocks_of_its_own_chunks_and_the_bm25_leg_reads_them_there(citus, pair):
    with open_primary(pair.cluster) as conn:
        beside = conn.execute(
            """SELECT shard_name(p.logicalrelid, p.shardid), shard_name(c.logicalrelid, c.shardid), n.nodeport
               FROM pg_dist_shard p JOIN pg_dist_shard c USING (shardminvalue)
               JOIN pg_dist_placement l ON l.shardid = p.shardid JOIN pg_dist_node n USING (groupid)
               WHERE p.logicalrelid = %s::regclass AND c.logicalrelid = %s::regclass""",
            (f"hybrid_rag.{pair.name}__postings", f"hybrid_rag.{pair.name}"),
        ).fetchall()
        chunk_count = Engine(pair.cluster).collection(pair.name).chunk_count
    posted = 0
    for postings, chunks, port in beside:  # read on each worker directly
        with psycopg.connect(citus.worker(port - citus.port)) as conn:
            keys, strangers = conn.execute(
                f"""SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (SELECT FROM {chunks} c WHERE c.key = p.key))
                    FROM (SELECT DISTINCT unnest(chunk_keys) AS key FROM {postings}) p"""
            ).fetchone()
        assert keys > 0 and strangers == 0, postings
        posted += keys
    assert len(beside) >= 2 and posted == chunk_count  # every chunk posted once, on its own shard

    params = SearchParams(mode="text")
    with open_primary(pair.cluster) as conn, conn.transaction():
        collection = Engine(pair.cluster).collection(pair.name)
        conn.execute("SET LOCAL citus.explain_all_tasks = on")
        statement, values = build_search(collection, params, query="cancer cells in mice", embedding=None)
        plan = "\n".join(row[0] for row in conn.execute(sql.SQL("EXPLAIN ") + statement, values).fetchall())
    tasks = [task for task in plan.split("->  Task") if f"{pair.name}__postings_" in task]
    for task in tasks:  # the read of one shard's blocks, the grouping and the ranking, together on that shard
        assert len(set(re.findall(rf"{pair.name}__postings_(\d+)", task))) == 1, task
        assert "Aggregate" in task and "WindowAgg" in task and "Limit" in task, task
    assert len(tasks) == len(beside)  # every shard's blocks, in a task of their own


@pytest.mark.parametrize("mode", ["text", "vector", "hybrid"])
def test_citus_exact_results_equal_one_node_id_for_id_and_score_for_score(pair, model, queries, mode):
    compared = 0
    for filter in FILTERS:
        params = SearchParams(k=10, mode=mode, filter=filter, exact_text=True)
        for query in queries:
            embedding = np.asarray(model.embeddings.embed_query(query), dtype=np.float32)
            cluster = exact_rows(pair.cluster, pair.name, params, query, embedding)
            single = exact_rows(pair.single, pair.name, params, query, embedding)
            assert cluster, (query, filter)
            assert_same_rows(cluster, single, (query, filter))
            compared += 1
    assert compared >= 3 * 50


def _top(settings: Settings, name: str, query: str, params: SearchParams, model: EmbeddingModel) -> list[str]:
    return [hit.id for hit in Engine(settings, model=model).search(name, query, params).hits]


def test_citus_bounded_bm25_and_hnsw_stay_within_the_single_node_tolerances(pair, model, queries, monkeypatch):
    monkeypatch.setattr(retriever.query, "TEXT_EXACT_UP_TO", 0)  # bounded reads, as a larger collection has
    text, vectors = [], []
    for query in queries:
        exact = _top(pair.cluster, pair.name, query, SearchParams(mode="text", exact_text=True), model)
        bounded = _top(pair.cluster, pair.name, query, SearchParams(mode="text"), model)
        text.append(len(set(exact) & set(bounded)) / len(exact))
        embedding = np.asarray(model.embeddings.embed_query(query), dtype=np.float32)
        nearest = [row[0] for row in exact_rows(pair.cluster, pair.name, SearchParams(mode="vector"), query, embedding)]
        found = _top(pair.cluster, pair.name, query, SearchParams(mode="vector"), model)
        vectors.append(len(set(nearest) & set(found)) / len(nearest))
    assert np.mean(text) >= 0.97  # the single node's floor (test_text_leg)
    assert np.mean(vectors) >= 0.9  # HNSW recall@10 (the README's floor for the default index)


def test_citus_like_collapse_and_filters_match_one_node(pair, model, records, queries):
    like = records[5]["id"]
    for params, query, kwargs in (
        (SearchParams(k=10, collapse=True), queries[0], {}),
        (SearchParams(k=10, filter={"bucket": 2}), queries[1], {}),
        (SearchParams(k=10, filter={"$and": [{"bucket": 3}, {"year": 2003}]}), queries[2], {}),  # selective
        (SearchParams(k=10, mode="text"), "", {"like": like}),
    ):
        cluster, single = (
            Engine(settings, model=model).search(pair.name, query, params, **kwargs).hits
            for settings in (pair.cluster, pair.single)
        )
        assert len(cluster) == len(single) == 10, params
        assert len({hit.id for hit in cluster} & {hit.id for hit in single}) >= 9, params
        if params.filter:
            assert all(hit.metadata["bucket"] == single[0].metadata["bucket"] for hit in cluster), params
        if kwargs:
            assert like not in {hit.document_id for hit in cluster}
        if params.collapse:
            assert len({hit.document_id for hit in cluster}) == 10


def _bm25_leg(settings: Settings, name: str, params: SearchParams, query: str, embedding: np.ndarray, rows: str):
    """Rows of the search statement's own CTEs (`rows`: a select over them, `c` each row's chunk found by `t.key`)."""
    with _searching(settings, name, params, query, embedding) as (conn, collection, statement, values):
        legs = statement.as_string(conn).split(",\nfused AS (")[0]  # the legs, without the fusion
        chunks = collection.table().as_string(conn)
        return conn.execute(f"{legs}\n{rows.format(chunks=chunks)}", values).fetchall()


def test_citus_a_bounded_bm25_leg_bounds_what_it_did_not_read_and_never_overscores(
    citus, postgres15_settings, model, records, queries, monkeypatch
):
    name = f"t_citus_cut_{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(retriever.store.postings, "POSTINGS_BLOCK", 4)  # many blocks per term on every shard
    for settings in (citus.settings, postgres15_settings):
        Engine(settings, model=model).ingest_records(name, records[:200], "scifact")
    monkeypatch.setattr(retriever.query, "TEXT_EXACT_UP_TO", 0)
    monkeypatch.setattr(retriever.query, "TEXT_BLOCKS", 1)  # a block or two per term: most terms cut
    monkeypatch.setattr(retriever.query, "TEXT_RESCORE", 1)  # and few unsure chunks rescored
    exact_rows = "SELECT c.id, t.score FROM text_leg t JOIN {chunks} c ON c.key = t.key"
    try:
        for settings in (citus.settings, postgres15_settings):
            cut = 0
            for query in queries[:30]:
                embedding = np.asarray(model.embeddings.embed_query(query), dtype=np.float32)
                everything = SearchParams(mode="text", exact_text=True, candidates=5000)
                exact = dict(_bm25_leg(settings, name, everything, query, embedding, exact_rows))
                bounded = SearchParams(mode="hybrid", candidates=20)
                scored = _bm25_leg(settings, name, bounded, query, embedding, exact_rows)
                read = _bm25_leg(
                    settings, name, bounded, query, embedding,
                    "SELECT c.id, t.partial, t.missing FROM text_read t JOIN {chunks} c ON c.key = t.key",
                )  # fmt: skip
                assert all(score <= exact[chunk] + TOLERANCE for chunk, score in scored), query  # partial or exact
                for chunk, partial, missing in read:  # what a chunk lacks, the bounds of its cut terms cover
                    # (a block's best impact is stored as a `real`: a bound is good to its 24 bits)
                    assert partial - TOLERANCE <= exact[chunk] <= (partial + missing) * (1 + 1e-6), (query, chunk)
                cut += sum(missing > 0 and exact[chunk] > partial + TOLERANCE for chunk, partial, missing in read)
            assert cut  # the reads were cut: chunks kept with a partial score and its bound
    finally:
        for settings in (citus.settings, postgres15_settings):
            _drop(settings, name)


def test_citus_a_bulk_load_and_maintain_build_what_they_build_on_one_node(citus, postgres15_settings, model, records):
    name = f"t_citus_bulk_{uuid.uuid4().hex[:8]}"
    try:
        for settings in (citus.settings, postgres15_settings):
            engine = Engine(settings, model=model)
            engine.ingest_records(name, records[:300], "scifact")  # into an empty collection: the bulk path
            engine.delete_documents(name, [record["id"] for record in records[:40]])
            (stats,) = engine.maintain([name])
            assert stats.chunks == engine.collection(name).chunk_count > 0
            assert stats.tables[name]["heap_bytes"] > 0 and stats.total_bytes() > stats.tables[name]["heap_bytes"]
        assert collection_state_of(citus.settings, name) == collection_state_of(postgres15_settings, name)
    finally:
        for settings in (citus.settings, postgres15_settings):
            _drop(settings, name)


def _on_workers(citus, name: str, statement: str, *, table: str = "", **values: object) -> list[tuple]:
    """Rows of `statement` (`{table}` standing for each shard or replica of `hybrid_rag.<name><table>`), read
    on the workers directly: every placement, not what the coordinator routes to."""
    logical = f"hybrid_rag.{name}{table}"
    with open_primary(citus.settings) as conn:
        placements = conn.execute(
            "SELECT shard_name(logicalrelid, shardid), nodeport FROM pg_dist_shard JOIN pg_dist_placement "
            "USING (shardid) JOIN pg_dist_node USING (groupid) WHERE logicalrelid = %s::regclass AND groupid > 0",
            (logical,),
        ).fetchall()
    assert placements
    found = []
    for shard, port in placements:
        schema, _, relation = shard.partition(".")
        with psycopg.connect(citus.worker(port - citus.port)) as conn:  # the worker itself, no engine
            query = sql.SQL(statement).format(table=sql.Identifier(schema, relation.strip('"')))
            found += conn.execute(query, values).fetchall()
    return found


def test_citus_replace_and_delete_leave_nothing_of_the_old_version_on_any_worker(citus, model, records):
    name = f"t_citus_replace_{uuid.uuid4().hex[:8]}"
    engine = Engine(citus.settings, model=model)
    try:
        engine.ingest_records(name, records[:30], "scifact")
        replaced, deleted = records[3]["id"], records[7]["id"]
        keys = "SELECT key FROM {table} WHERE document_id = ANY(%(documents)s)"
        old_keys = {key for (key,) in _on_workers(citus, name, keys, documents=[replaced, deleted])}
        assert old_keys
        changed = {**records[3], "text": "An entirely new abstract about telescopes and mirrors."}
        engine.ingest_records(name, [changed, *records[:3], *records[4:30]], "scifact")
        engine.delete_document(name, deleted)

        chunks = _on_workers(citus, name, "SELECT document_id, content FROM {table}")
        assert deleted not in {document for document, _ in chunks}
        kept = [content for document, content in chunks if document == replaced]
        assert len(kept) == 1 and kept[0].endswith(changed["text"])  # the title, then the new text
        documents = _on_workers(citus, name, "SELECT document_id FROM {table}", table="__documents")
        assert deleted not in {document for (document,) in documents} and len(documents) == 29
        posted = _on_workers(citus, name, "SELECT term, unnest(chunk_keys) FROM {table}", table="__postings")
        live = _on_workers(citus, name, "SELECT u.lexeme, c.key FROM {table} c, unnest(c.tsv) AS u")
        assert not old_keys & {key for _, key in posted}
        assert sorted(posted) == sorted(live)  # each live chunk posted under each of its terms once, nothing else
    finally:
        _drop(citus.settings, name)


def test_citus_migration_m010_takes_the_tombstoned_postings_out_of_the_shards_blocks(citus, model, records):
    older, today = (f"t_citus_m010_{uuid.uuid4().hex[:8]}", f"t_citus_today_{uuid.uuid4().hex[:8]}")
    gone = [record["id"] for record in records[2:30:5]]
    try:
        for name in (older, today):
            Engine(citus.settings, model=model).ingest_records(name, records[:40], "scifact")
        Engine(citus.settings, model=model).delete_documents(today, gone)
        with open_primary(citus.settings) as conn:
            delete_as_before_m010(conn, older, gone, citus=True)
        assert collection_state_of(citus.settings, older) != collection_state_of(citus.settings, today)

        with open_primary(citus.settings) as conn:
            assert migrate(conn) == ["m010_no_tombstones"]
            left = conn.execute("SELECT to_regclass(%s)", (f"hybrid_rag.{older}__tombstones",)).fetchone()[0]

        assert left is None
        assert collection_state_of(citus.settings, older) == collection_state_of(citus.settings, today)
        live = _on_workers(citus, older, "SELECT u.lexeme, c.key FROM {table} c, unnest(c.tsv) AS u")
        posted = _on_workers(citus, older, "SELECT term, unnest(chunk_keys) FROM {table}", table="__postings")
        assert sorted(live) == sorted(posted)  # read on the workers: every shard's blocks hold its live chunks only
    finally:
        for name in (older, today):
            _drop(citus.settings, name)


def test_citus_a_backup_restores_on_the_cluster_and_on_one_node_alike(
    citus, postgres15_settings, model, records, tmp_path
):
    name, copy = (f"t_citus_backup_{uuid.uuid4().hex[:8]}", f"t_citus_restored_{uuid.uuid4().hex[:8]}")
    cluster, single = Engine(citus.settings, model=model), Engine(postgres15_settings, model=model)
    try:
        cluster.ingest_records(name, records[:40], "scifact")
        cluster.delete_document(name, records[5]["id"])  # blocks it left part-empty in the archive
        single.ingest_records(name, records[:40], "scifact")
        single.delete_document(name, records[5]["id"])
        cluster.backup(name, tmp_path / "cluster.zip")
        single.backup(name, tmp_path / "single.zip")
        cluster.restore(tmp_path / "cluster.zip", copy)  # cluster → cluster
        report = single.restore(tmp_path / "cluster.zip", copy)  # cluster → one node
        cluster.drop_collection(name)
        cluster.restore(tmp_path / "single.zip", name)  # one node → cluster

        original = collection_state_of(postgres15_settings, name)
        for settings, restored in ((citus.settings, copy), (postgres15_settings, copy), (citus.settings, name)):
            assert collection_state_of(settings, restored) == original, (settings.database_url, restored)
        partial_blocks = sql.SQL(  # per term, on the copy restored off the cluster
            "SELECT max(n) FROM (SELECT count(*) AS n FROM {} WHERE cardinality(chunk_keys) < %s GROUP BY term) t"
        ).format(sql.Identifier("hybrid_rag", f"{copy}__postings"))
        with open_primary(postgres15_settings) as conn:
            partial = conn.execute(partial_blocks, (retriever.store.postings.POSTINGS_BLOCK,)).fetchone()[0]
        assert partial == 1  # its blocks cut anew, as one node cuts them
        assert report.rows["chunks"] == len(original["chunks"])
        for restored in (copy, name):
            collection = cluster.collection(restored)
            with open_primary(citus.settings) as conn:
                placed = conn.execute(sql.SQL("SELECT DISTINCT document_id, anchor FROM {}").format(collection.table()))
                assert all(anchor == anchor_of(collection.anchors, document) for document, anchor in placed)
        params = SearchParams(k=10, mode="hybrid", exact_text=True)
        for query in ("cancer cells in mice", "vitamin D deficiency"):
            embedding = np.asarray(model.embeddings.embed_query(query), dtype=np.float32)
            expected = exact_rows(postgres15_settings, name, params, query, embedding)
            for restored in (copy, name):
                assert_same_rows(exact_rows(citus.settings, restored, params, query, embedding), expected, query)
    finally:
        for settings, restored in (
            (citus.settings, name),
            (citus.settings, copy),
            (postgres15_settings, name),
            (postgres15_settings, copy),
        ):
            with contextlib.suppress(CollectionNotFound):
                _drop(settings, restored)


def _cli(settings: Settings, *args: str):
    get_settings.cache_clear()
    try:
        return CliRunner(env={"DATABASE_URL": settings.database_url}).invoke(main, list(args))
    finally:
        get_settings.cache_clear()


def test_citus_a_stopped_worker_is_a_503_and_exit_2_and_the_next_search_succeeds(citus, model, records):
    name = f"t_citus_down_{uuid.uuid4().hex[:8]}"
    engine = Engine(citus.settings, model=model)
    engine.ingest_records(name, records[:40], "scifact")
    search = {"query": "cholesterol", "mode": "text", "k": 3}
    try:
        with TestClient(create_app(citus.settings, model=model)) as client:
            url = f"/v1/collections/{name}/search"
            assert client.post(url, json=search).status_code == 200
            assert client.get("/readyz").status_code == 200
            citus.stop("worker1")
            try:
                not_ready = client.get("/readyz")  # the coordinator answers, a worker does not: not ready
                assert not_ready.status_code == 503 and not_ready.json()["detail"] == "the database is unreachable"
                answered = client.post(url, json=search)
                assert answered.status_code == 503, answered.text
                assert answered.headers["content-type"].startswith("application/problem+json")
                result = _cli(citus.settings, "search", "cholesterol", "-c", name, "--mode", "text")
                assert result.exit_code == 2, result.output
                assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
            finally:
                citus.start()
            assert client.post(url, json=search).status_code == 200 and client.get("/readyz").status_code == 200
        assert _cli(citus.settings, "search", "cholesterol", "-c", name, "--mode", "text").exit_code == 0
    finally:
        _drop(citus.settings, name)


def _whole(state: dict[str, list[tuple]]) -> None:
    """Every stored document has all its chunks, and the BM25 statistics count exactly the live chunks."""
    chunks_of = Counter(document for _, document, _, _ in state["chunks"])
    assert chunks_of == {document: count for document, _, count in state["documents"]}
    assert Counter(term for term, *_ in state["postings"]) == dict(state["document frequencies"])
    assert state["statistics"][0][0] == len(state["chunks"])


def test_citus_a_worker_lost_mid_ingest_leaves_nothing_half_written(
    citus, postgres15_settings, model, records, monkeypatch
):
    name = f"t_citus_broken_{uuid.uuid4().hex[:8]}"
    changed = [{**record, "text": record["text"] + " Revised."} for record in records[:20]]
    more = [*changed, *records[60:400]]  # several batches of 256 chunks
    written: list[int] = []

    def plan_losing_a_worker(collection, documents, *args, **kwargs):
        """The writer's own plan; in the second batch, worker2 stops once the chunks are copied to the shards."""
        plan, reply = writer_plan(collection, documents, *args, **kwargs), None
        while True:
            try:
                op = plan.send(reply)
            except StopIteration as done:
                written.append(len(documents))
                return done.value
            reply = yield op
            if isinstance(op, Copy) and written:
                citus.stop("worker2")  # inside the transaction, after its COPY reached both workers

    writer_plan = retriever.store.writer.write_plan
    try:
        for settings in (citus.settings, postgres15_settings):
            Engine(settings, model=model).ingest_records(name, records[:60], "scifact")
        monkeypatch.setattr(retriever.store.writer, "write_plan", plan_losing_a_worker)
        try:
            with pytest.raises(DatabaseUnavailable):
                Engine(citus.settings, model=model).ingest_records(name, more, "scifact")
        finally:
            monkeypatch.undo()
            citus.start()
        assert len(written) == 1  # one batch written, then the ingest stopped at the lost worker
        after = collection_state_of(citus.settings, name)
        _whole(after)
        assert len(after["documents"]) == 60 + written[0] - 20  # the first batch (its 20 changed documents replaced)
        stored = _on_workers(citus, name, "SELECT DISTINCT document_id FROM {table}")
        assert len(stored) == len(after["documents"])  # on the workers themselves: nothing of the batch lost midway
        for settings in (citus.settings, postgres15_settings):
            Engine(settings, model=model).ingest_records(name, more, "scifact")
        assert collection_state_of(citus.settings, name) == collection_state_of(postgres15_settings, name)
    finally:
        for settings in (citus.settings, postgres15_settings):
            _drop(settings, name)


def test_citus_http_api_retriever_and_vector_store_serve_a_distributed_collection(citus, model, records):
    name = f"t_citus_api_{uuid.uuid4().hex[:8]}"
    try:
        with TestClient(create_app(citus.settings, model=model)) as client:
            body = {"documents": [{"id": r["id"], "text": r["text"], "metadata": r["metadata"]} for r in records[:50]]}
            assert client.post(f"/v1/collections/{name}/documents", json=body).status_code == 200
            found = client.post(f"/v1/collections/{name}/search", json={"query": "insulin", "k": 5})
            assert found.status_code == 200 and len(found.json()["results"]) == 5
            assert client.delete(f"/v1/collections/{name}/documents/{records[0]['id']}").status_code in (200, 204)
        documents = HybridRetriever(collection=name, k=4, mode="text", settings=citus.settings).invoke(
            "cells in patients"
        )
        assert len(documents) == 4 and records[0]["id"] not in {d.metadata.get("document_id") for d in documents}

        store = HybridVectorStore(
            f"{name}_store", HashEmbeddings(64), settings=citus.settings, embedding_name="test:h64"
        )
        ids = store.add_texts([r["text"] for r in records[50:70]], ids=[r["id"] for r in records[50:70]])
        nearest = store.similarity_search_with_score(records[60]["text"], k=3)
        assert nearest[0][0].id == records[60]["id"] and len(store.max_marginal_relevance_search("cells", k=3)) == 3
        store.delete(ids[:5])
        assert not {r["id"] for r in records[50:55]} & {d.id for d in store.similarity_search("cells", k=20)}
    finally:
        _drop(citus.settings, name)
        _drop(citus.settings, f"{name}_store")


def test_citus_topics_and_a_reembed_work_on_a_distributed_collection(citus, model, records):
    name = f"t_citus_topics_{uuid.uuid4().hex[:8]}"
    wider = EmbeddingModel("test:hash-96", HashEmbeddings(96))
    try:
        Engine(citus.settings, model=model).ingest_records(name, records[:80], "scifact")
        chunks = Engine(citus.settings, model=model).collection(name).chunk_count
        found = Engine(citus.settings, model=model).find_topics(name, k=3, key="cluster")
        assert sum(topic.size for topic in found.topics) == chunks
        in_topic = Engine(citus.settings, model=model).search(name, "cells", SearchParams(k=5, filter={"cluster": 0}))
        assert in_topic.hits and all(hit.metadata["cluster"] == 0 for hit in in_topic.hits)

        report = Engine(citus.settings, model=wider).reembed(name, wider, batch_size=16)
        assert (report.model, report.dimensions, report.embedded) == ("test:hash-96", 96, chunks)
        engine = Engine(citus.settings, model=wider)
        engine.ingest_records(name, records[80:90], "scifact")  # new chunks: the new model, and a topic
        hits = engine.search(name, records[85]["text"][:200], SearchParams(k=3, mode="vector")).hits
        assert hits[0].document_id == records[85]["id"] and "cluster" in hits[0].metadata
    finally:
        _drop(citus.settings, name)


def test_citus_an_ivfflat_halfvec_collection_shards_its_cells(citus, model, records):
    name = f"t_citus_ivf_{uuid.uuid4().hex[:8]}"
    index = VectorIndex(kind="ivfflat", lists=4, storage="halfvec")
    try:
        engine = Engine(citus.settings, model=model)
        engine.ingest_records(name, records[:200], "scifact", index=index)
        for record in records[100:110]:
            params = SearchParams(k=3, mode="vector", probes=4)  # every cell of every shard
            assert engine.search(name, record["text"][:1000], params).hits[0].document_id == record["id"]
        bucket = engine.search(name, "cells", SearchParams(k=5, filter={"bucket": 2})).hits
        assert len(bucket) == 5 and {hit.metadata["bucket"] for hit in bucket} == {2}
    finally:
        _drop(citus.settings, name)


def _database(port: int, database: str = "postgres") -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{database}"


def test_citus_a_collection_from_before_citus_stays_on_the_coordinator_and_new_ones_are_sharded(citus, model, records):
    database = f"legacy_{uuid.uuid4().hex[:6]}"
    ports = [citus.port, citus.port + 1, citus.port + 2]
    for port in ports:
        with psycopg.connect(_database(port), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    settings = Settings(database_url=_database(citus.port, database), home=citus.folder)
    try:
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION vector")
        Engine(settings, model=model).ingest_records("before", records[:30], "scifact")  # plain PostgreSQL here
        for port in ports:
            with psycopg.connect(_database(port, database), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS citus")
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            conn.execute("SELECT citus_set_coordinator_host('127.0.0.1', %s)", (citus.port,))
            for port in ports[1:]:
                conn.execute("SELECT citus_add_node('127.0.0.1', %s)", (port,))
        engine = Engine(settings, model=model)
        engine.ingest_records("after", records[:30], "scifact")
        engine.ingest_records("before", records[30:40], "scifact")
        (stats,) = engine.maintain(["before"], reindex=True)
        assert stats.chunks == engine.collection("before").chunk_count and stats.tables["before"]["heap_bytes"] > 0
        with psycopg.connect(settings.database_url) as conn:
            sharded = {row[0] for row in conn.execute("SELECT logicalrelid::text FROM pg_dist_partition")}
        assert "hybrid_rag.after" in sharded
        assert not {table for table in sharded if table.startswith("hybrid_rag.before")}
        assert (engine.collection("before").distributed, engine.collection("after").distributed) == (False, True)
        for name in ("before", "after"):
            assert (
                engine.search(name, records[5]["text"][:300], SearchParams(k=3)).hits[0].document_id == records[5]["id"]
            )
    finally:
        for port in reversed(ports):
            with psycopg.connect(_database(port), autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))


def test_citus_cluster_script_keeps_its_folders_port_and_refuses_mistakes(citus, tmp_path):
    url = citus.attempt("url")  # no CITUS_PORT: the folder's own
    assert url.returncode == 0 and url.stdout.strip() == citus.settings.database_url
    other = citus.attempt("start", CITUS_PORT=str(citus.port + 10))
    assert other.returncode == 2 and f"CITUS_PORT={citus.port}" in other.stderr
    assert citus.attempt("stop", "worker1", "worker9").returncode == 2
    assert citus.attempt("remove", folder=tmp_path).returncode == 2 and tmp_path.exists()  # holds no cluster
    assert citus.attempt("start", folder=tmp_path / "new", CITUS_SHARD_COUNT="0").returncode == 2
    assert not (tmp_path / "new").exists()
    with psycopg.connect(citus.settings.database_url) as conn:  # nothing was stopped or started
        assert conn.execute("SELECT count(*) FROM pg_dist_node WHERE isactive").fetchone()[0] == 3
        assert conn.execute(
            "SELECT bool_and(citus_check_connection_to_node(nodename, nodeport)) FROM pg_dist_node"
        ).fetchone()[0]
