"""The BM25 leg reads a bounded head of each term's impact-ordered posting blocks.

Specification: exact mode equals BM25 computed in Python from the chunks' own lexemes,
each query term weighted by how often the query holds it (`query_weight`); the bounded leg agrees with it
on the top 10 even when frequent terms are cut, and equals it where it rescores every
chunk its bounds leave in doubt, repeated query terms included; a deleted or replaced
chunk's postings leave their blocks at once, and the trimmed blocks left behind keep both
legs' rankings; an append fills its terms' partial blocks, and a trimmed one only once it is
under half full; `maintain` cuts the blocks anew once many are trimmed, beside the live
ones, so searches go on meanwhile, and a rebuild that cannot swap them in gives way and
keeps the live ones.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter

import pytest
from psycopg import sql

import retriever.query
import retriever.store.postings
from ingest import ChunkingConfig, SourceDocument
from retriever import Engine
from retriever.connections import open_primary
from retriever.errors import DatabaseUnavailable
from retriever.query import TEXT_BLOCKS
from retriever.results import SearchParams
from retriever.store.bm25 import K1 as BM25_K1
from retriever.store.bm25 import B as BM25_B
from retriever.store.bm25 import query_weight
from retriever.store.collections import get_collection
from retriever.store.maintenance import collection_stats, maintain_collection
from retriever.store.postings import POSTINGS_BLOCK, refresh_postings

# Lexemes `to_tsvector('english')` keeps as they are; drawn Zipf-like, so the head is cut.
VOCABULARY = [
    f"{a}{b}" for a in ("zor", "vek", "pim", "tal", "mux", "rin") for b in ("ba", "do", "ki", "lu", "ne", "so")
]
DOCUMENTS = 2400


def _text(rng: random.Random) -> str:
    weights = [1 / (rank + 1) for rank in range(len(VOCABULARY))]
    return " ".join(rng.choices(VOCABULARY, weights, k=rng.randint(8, 40)))


def _corpus(n: int, seed: int = 7, prefix: str = "d") -> list[SourceDocument]:
    rng = random.Random(seed)
    return [
        SourceDocument(document_id=f"{prefix}{i}", text=_text(rng), title=None, source="test", metadata={})
        for i in range(n)
    ]


QUERIES = [" ".join(random.Random(seed).sample(VOCABULARY, random.Random(seed).randint(2, 5))) for seed in range(40)]
# Queries that repeat terms, the frequent (cut) ones most: their query-term frequency counts.
REPEATING = [
    " ".join([*(words := random.Random(seed).choices(VOCABULARY[:8], k=random.Random(seed).randint(3, 8))), words[0]])
    for seed in range(20)
]


def _python_bm25(conn, name: str, query: str) -> dict[str, float]:
    rows = conn.execute(
        f'SELECT c.id, u.lexeme, cardinality(u.positions) FROM hybrid_rag."{name}" c, unnest(c.tsv) u'
    ).fetchall()
    tf: dict[str, Counter[str]] = {}
    for chunk_id, lexeme, count in rows:
        tf.setdefault(chunk_id, Counter())[lexeme] = count
    lengths = {chunk_id: sum(counts.values()) for chunk_id, counts in tf.items()}
    n, avgdl = len(tf), sum(lengths.values()) / len(tf)
    df = Counter(lexeme for counts in tf.values() for lexeme in counts)
    qtf = dict(  # each query lexeme and how often the query holds it
        conn.execute("SELECT lexeme, cardinality(positions) FROM unnest(to_tsvector('english', %s))", (query,))
    )
    terms = set(qtf)
    return {
        chunk_id: sum(
            query_weight(qtf[t])
            * math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
            * counts[t]
            * (BM25_K1 + 1)
            / (counts[t] + BM25_K1 * (1 - BM25_B + BM25_B * lengths[chunk_id] / avgdl))
            for t in terms
            if t in counts
        )
        for chunk_id, counts in tf.items()
        if terms & counts.keys()
    }


def _same_ranking(found: list[str], scores: dict[str, float]) -> bool:
    """Found ids carry the best scores, in order (ties may come in any order)."""
    best = sorted(scores.values(), reverse=True)[: len(found)]
    return [round(scores.get(i, -1), 9) for i in found] == [round(v, 9) for v in best]


def _hits(settings, name: str, query: str, params: SearchParams):
    with open_primary(settings) as conn:
        return Engine(settings).search(name, query, params, conn=conn).hits


def _ids(settings, name: str, query: str, *, exact: bool, k: int = 10) -> list[str]:
    return [hit.id for hit in _hits(settings, name, query, SearchParams(k=k, mode="text", exact_text=exact))]


@pytest.fixture
def bounded(monkeypatch) -> None:
    """Bounded reads even for queries with few postings (a larger collection's regime)."""
    monkeypatch.setattr(retriever.query, "TEXT_EXACT_UP_TO", 0)


@pytest.fixture
def loaded(settings, collection_name, fake_model) -> str:
    Engine(settings, model=fake_model).ingest(collection_name, _corpus(DOCUMENTS), ChunkingConfig())
    return collection_name


def test_frequent_terms_have_more_postings_than_one_bounded_read(settings, loaded):
    with open_primary(settings) as conn:
        top_df = conn.execute(f'SELECT max(df) FROM hybrid_rag."{loaded}__terms"').fetchone()[0]
    assert top_df > TEXT_BLOCKS * POSTINGS_BLOCK  # so the bound is exercised


def test_small_queries_read_every_posting(settings, loaded):
    for query in QUERIES[:10]:
        assert _ids(settings, loaded, query, exact=False) == _ids(settings, loaded, query, exact=True)


def test_exact_mode_is_bm25_over_the_chunks_lexemes(settings, loaded):
    with open_primary(settings) as conn:
        for query in QUERIES[:10]:
            assert _same_ranking(_ids(settings, loaded, query, exact=True), _python_bm25(conn, loaded, query)), query


def test_a_term_the_query_repeats_outweighs_an_equally_rare_one_in_text_and_hybrid(
    settings, collection_name, fake_model
):
    documents = {"z": "zorba pimki", "v": "vekdo pimki", "other": "talne muxso"}  # zorba, vekdo: same df, length
    Engine(settings, model=fake_model).ingest(
        collection_name, [SourceDocument(i, t, None, "test", {}) for i, t in documents.items()], ChunkingConfig()
    )
    engine = Engine(settings, model=fake_model)
    for query, first in (("zorba zorba vekdo", "z"), ("zorba vekdo vekdo", "v")):  # a tie would rank both alike
        text = engine.search(collection_name, query, SearchParams(k=3, mode="text")).hits
        hybrid = engine.search(collection_name, query, SearchParams(k=3)).hits
        assert text[0].document_id == first, query
        assert {hit.document_id: hit.text_rank for hit in hybrid}[first] == 1, query


def test_exact_mode_counts_each_repetition_of_a_query_term(settings, loaded):
    with open_primary(settings) as conn:
        for query in REPEATING:
            assert _same_ranking(_ids(settings, loaded, query, exact=True), _python_bm25(conn, loaded, query)), query


def test_bounded_leg_is_exact_for_repeated_terms_when_it_may_rescore_every_doubtful_chunk(
    settings, loaded, bounded, monkeypatch
):
    # a repeated term's bound must scale with its weight, or chunks in its unread tail are
    # judged unable to reach the top and never rescored
    monkeypatch.setattr(retriever.query, "TEXT_RESCORE", 1000)
    with open_primary(settings) as conn:
        for query in REPEATING:
            scores = _python_bm25(conn, loaded, query)
            assert _same_ranking(_ids(settings, loaded, query, exact=False, k=100), scores), query  # all candidates


def test_bounded_leg_agrees_with_exact_bm25_on_the_top_10(settings, loaded, bounded):
    overlaps = [
        len(set(_ids(settings, loaded, q, exact=False)) & set(_ids(settings, loaded, q, exact=True))) / 10
        for q in QUERIES
    ]
    assert sum(overlaps) / len(overlaps) >= 0.97


def test_incremental_writes_keep_the_leg_exact_where_nothing_is_cut(settings, collection_name, fake_model, bounded):
    for batch in range(4):
        more = _corpus(50, seed=100 + batch, prefix=f"b{batch}-")
        Engine(settings, model=fake_model).ingest(collection_name, more, ChunkingConfig())
    with open_primary(settings) as conn:
        for query in QUERIES[:10]:
            scores = _python_bm25(conn, collection_name, query)
            assert _same_ranking(_ids(settings, collection_name, query, exact=False), scores), query


def _posted_keys(conn, name: str) -> list[int]:
    return [
        key
        for (key,) in conn.execute(
            sql.SQL("SELECT unnest(chunk_keys) FROM {}").format(sql.Identifier("hybrid_rag", f"{name}__postings"))
        )
    ]


def _blocks(conn, name: str, term: str | None = None) -> list[tuple[int, bool]]:
    """(postings, trimmed) of each block (of `term`), by first key and term."""
    statement = sql.SQL(
        "SELECT cardinality(chunk_keys), trimmed FROM {} "
        "WHERE term = %(term)s OR %(term)s IS NULL ORDER BY chunk_keys[1], term"
    )
    return conn.execute(statement.format(sql.Identifier("hybrid_rag", f"{name}__postings")), {"term": term}).fetchall()


def _table_oid(conn, name: str) -> int:
    return conn.execute("SELECT %s::regclass::oid", (f"hybrid_rag.{name}__postings",)).fetchone()[0]


def test_deleted_chunks_leave_their_blocks_at_once_and_both_rankings_hold(settings, loaded, collection_state, bounded):
    with open_primary(settings) as conn:
        blocks = len(_blocks(conn, loaded))
    gone = {f"d{i}" for i in range(0, DOCUMENTS, 2)}
    assert Engine(settings).delete_documents(loaded, sorted(gone)) == len(gone)  # in statements of 256 documents

    state = collection_state(loaded)
    with open_primary(settings) as conn:
        assert sorted(_posted_keys(conn, loaded)) == sorted(  # every live chunk's postings, and no other
            key for (key,) in conn.execute(f'SELECT key FROM hybrid_rag."{loaded}", unnest(tsv)')
        )
        assert collection_stats(conn, get_collection(conn, loaded)).trimmed_blocks > blocks / 10
        for query in QUERIES[:10]:
            scores = _python_bm25(conn, loaded, query)
            assert _same_ranking(_ids(settings, loaded, query, exact=True), scores), query
        overlaps = [
            len(set(_ids(settings, loaded, q, exact=False)) & set(_ids(settings, loaded, q, exact=True))) / 10
            for q in QUERIES
        ]
        assert sum(overlaps) / len(overlaps) >= 0.97
        stats = maintain_collection(conn, get_collection(conn, loaded))  # over a tenth trimmed: cut anew
        assert stats.trimmed_blocks == 0 and len(_blocks(conn, loaded)) < blocks
    assert collection_state(loaded) == state
    for query in QUERIES[:10]:
        assert not {hit.document_id for hit in _hits(settings, loaded, query, SearchParams(k=50, mode="text"))} & gone


def test_appends_fill_partial_blocks_and_a_trimmed_block_only_once_under_half_full(
    settings, collection_name, fake_model, monkeypatch
):
    monkeypatch.setattr(retriever.store.postings, "POSTINGS_BLOCK", 4)
    monkeypatch.setattr(retriever.store.postings, "MERGED_BELOW", 2)
    engine = Engine(settings, model=fake_model)

    def add(*numbers: int) -> list[tuple[int, bool]]:  # one ingest per document: an append each
        for n in numbers:
            engine.ingest(collection_name, [SourceDocument(f"d{n}", "zorba", None, "test", {})], ChunkingConfig())
        with open_primary(settings) as conn:
            return _blocks(conn, collection_name, "zorba")

    def delete(*numbers: int) -> None:
        engine.delete_documents(collection_name, [f"d{n}" for n in numbers])

    assert add(*range(10)) == [(4, False), (4, False), (2, False)]  # one partial block, filled by each append
    delete(0)
    assert add(10) == [(3, True), (4, False), (3, False)]  # a block a posting short stays as it is
    delete(1, 2)
    assert add(11) == [(4, False), (4, False), (1, False)]  # under half full: merged with the next postings


def test_an_ingest_that_replaces_every_document_leaves_only_the_new_postings(
    settings, collection_name, names, fake_model, collection_state, bounded
):
    engine = Engine(settings, model=fake_model)
    engine.ingest(collection_name, _corpus(400), ChunkingConfig())
    rewritten = _corpus(400, seed=8)  # the same document ids, new texts
    engine.ingest(collection_name, rewritten, ChunkingConfig())
    names.append(fresh := f"{collection_name}_fresh")
    engine.ingest(fresh, rewritten, ChunkingConfig())

    assert collection_state(collection_name) == collection_state(fresh)  # not a posting of the old texts
    with open_primary(settings) as conn:
        for query in QUERIES[:10]:
            scores = _python_bm25(conn, collection_name, query)
            assert _same_ranking(_ids(settings, collection_name, query, exact=False), scores), query


def test_a_rebuild_waits_for_open_searches_only_to_swap_in_its_blocks(settings, loaded):
    for i in range(0, DOCUMENTS, 4):
        Engine(settings).delete_document(loaded, f"d{i}")
    with open_primary(settings) as conn:
        assert collection_stats(conn, get_collection(conn, loaded)).trimmed_blocks > 0
    failures: list[BaseException] = []

    def rebuild(conn, collection) -> None:
        try:
            refresh_postings(conn, collection)
        except BaseException as exc:
            failures.append(exc)

    with open_primary(settings) as reader, open_primary(settings) as rebuilder, open_primary(settings) as watcher:
        collection = get_collection(reader, loaded)
        thread = threading.Thread(target=rebuild, args=(rebuilder, collection))
        waiting = None
        with reader.transaction():  # a search whose transaction stays open holds its tables
            Engine(settings).search(loaded, QUERIES[0], SearchParams(k=10, mode="text"), conn=reader)
            thread.start()
            for _ in range(600):
                waiting = watcher.execute(
                    "SELECT query FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'",
                    (rebuilder.info.backend_pid,),
                ).fetchone()
                if waiting:
                    break
                time.sleep(0.05)
        thread.join()
        stats = collection_stats(watcher, collection)

    assert not failures
    assert waiting is not None
    assert waiting[0].lstrip().startswith("LOCK TABLE")  # built, indexed and analyzed before it
    assert stats.trimmed_blocks == 0  # the blocks cut anew are in place
    for query in QUERIES[:5]:
        assert _ids(settings, loaded, query, exact=False) == _ids(settings, loaded, query, exact=True)


def test_a_rebuild_that_cannot_swap_gives_way_and_the_live_blocks_stay(
    settings, collection_name, fake_model, collection_state, monkeypatch
):
    monkeypatch.setattr(retriever.store.postings, "_SWAP_ATTEMPTS", 2)
    engine = Engine(settings, model=fake_model)
    engine.ingest(collection_name, _corpus(400), ChunkingConfig())
    engine.delete_documents(collection_name, [f"d{i}" for i in range(0, 400, 3)])  # trimmed blocks, to be cut anew
    state = collection_state(collection_name)
    with open_primary(settings) as reader, open_primary(settings) as rebuilder:
        oid, blocks = _table_oid(reader, collection_name), _blocks(reader, collection_name)
        assert any(trimmed for _, trimmed in blocks)
        collection = get_collection(reader, collection_name)
        with reader.transaction():  # a long reader of the blocks
            reader.execute(sql.SQL("SELECT count(*) FROM {}").format(collection.table("postings")))
            with pytest.raises(DatabaseUnavailable, match="could not be swapped in"):
                refresh_postings(rebuilder, collection)
        leftover = reader.execute("SELECT to_regclass(%s)", (f"hybrid_rag.{collection_name}__postings__next",))

        assert leftover.fetchone()[0] is None  # the blocks built beside went with their transaction
        assert _table_oid(reader, collection_name) == oid and _blocks(reader, collection_name) == blocks  # as they were
        assert collection_state(collection_name) == state
        for query in QUERIES[:5]:
            scores = _python_bm25(reader, collection_name, query)
            assert _same_ranking(_ids(settings, collection_name, query, exact=True), scores), query
