"""`fusion="linear"` and `"linear_max"` are one statement as RRF is, ranking exactly as `linear_fuse` does.

Specification: the hybrid statement's order, scores and leg ranks equal `linear_fuse`, with
the fusion's normalisers (`retriever.fusion.NORMALISERS`), over the two legs' raw scores
(negated cosine distances; BM25 from the chunks' lexemes, each query term counted as often
as the query holds it), legs cut at `candidates` so some chunks are missing from one of them.
"""

from __future__ import annotations

from collections import Counter

import pytest

from ingest import ChunkingConfig, SourceDocument
from retriever import Engine
from retriever.connections import open_primary
from retriever.fusion import NORMALISERS, linear_fuse
from retriever.results import SearchParams
from retriever.store.bm25 import bm25, idf

TOPICS = ["coffee", "cycling", "astronomy", "gardening"]
QUERY = "astronomy word3 word12 word12 note"
CANDIDATES = 15


def _corpus(n: int = 40) -> list[SourceDocument]:
    return [
        SourceDocument(
            document_id=f"doc-{i}",
            text=f"{TOPICS[i % 4]} note {i}: " + " ".join(f"word{(i * 7 + j) % 50}" for j in range(10 + i % 13)),
            title=None,
            source="test",
            metadata={},
        )
        for i in range(n)
    ]


def _bm25_scores(conn, name: str, query: str) -> dict[str, float]:
    """Exact BM25 of every chunk that holds a query lexeme, with `retriever.store.bm25`'s formulas."""
    rows = conn.execute(f'SELECT c.id, u.lexeme, cardinality(u.positions) FROM hybrid_rag."{name}" c, unnest(c.tsv) u')
    tf: dict[str, Counter[str]] = {}
    for chunk_id, lexeme, count in rows.fetchall():
        tf.setdefault(chunk_id, Counter())[lexeme] = count
    (vector,) = conn.execute("SELECT to_tsvector('english', %s)::text", (query,)).fetchone()
    qtf = Counter({lexeme.strip("'"): len(positions.split(",")) for lexeme, positions in _entries(vector)})
    lengths = {chunk_id: sum(counts.values()) for chunk_id, counts in tf.items()}
    n, avgdl = len(tf), sum(lengths.values()) / len(tf)
    df = Counter(lexeme for counts in tf.values() for lexeme in counts)
    return {
        chunk_id: sum(bm25(idf(n, df[t]), counts[t], lengths[chunk_id], avgdl, qtf=qtf[t]) for t in qtf if t in counts)
        for chunk_id, counts in tf.items()
        if qtf.keys() & counts.keys()
    }


def _entries(tsvector: str) -> list[tuple[str, str]]:
    """ "'a':1,3 'b':2" -> [("'a'", "1,3"), ("'b'", "2")]"""
    return [tuple(entry.rsplit(":", 1)) for entry in tsvector.split()]  # type: ignore[misc]


@pytest.mark.parametrize("fusion", ["linear", "linear_max"])
def test_linear_fusion_in_sql_equals_linear_fuse_of_the_legs_raw_scores(settings, collection_name, fake_model, fusion):
    engine = Engine(settings, model=fake_model)
    engine.ingest(collection_name, _corpus(), ChunkingConfig())
    params = SearchParams(k=40, candidates=CANDIDATES, fusion=fusion, weights=(0.6, 1.0), exact_text=True)
    embedding = fake_model.embed_query(QUERY)
    with open_primary(settings) as conn:

        def leg(mode: str) -> list[str]:
            alone = SearchParams(k=CANDIDATES, mode=mode, candidates=CANDIDATES, exact_text=True)  # type: ignore[arg-type]
            return [hit.id for hit in engine.search(collection_name, QUERY, alone, conn=conn).hits]

        vector, text = leg("vector"), leg("text")
        distances = dict(
            conn.execute(
                f'SELECT id, embedding <=> %s::vector FROM hybrid_rag."{collection_name}" WHERE id = ANY(%s)',
                (str([float(x) for x in embedding]), vector),
            ).fetchall()
        )
        bm25_scores = _bm25_scores(conn, collection_name, QUERY)
        hybrid = engine.search(collection_name, QUERY, params, conn=conn).hits

    assert len(text) == CANDIDATES < len(bm25_scores)  # the text leg is cut: some chunks miss it
    assert [round(bm25_scores[i], 9) for i in text] == sorted(
        (round(s, 9) for s in bm25_scores.values()), reverse=True
    )[:CANDIDATES]
    expected = linear_fuse(
        {"vector": [(i, -distances[i]) for i in vector], "text": [(i, bm25_scores[i]) for i in text]},
        weights={"vector": 0.6, "text": 1.0},
        normalisers=NORMALISERS[fusion],
    )
    assert [h.id for h in hybrid] == [item for item, _, _ in expected]
    assert [h.score for h in hybrid] == pytest.approx([score for _, score, _ in expected], rel=1e-9)
    assert [(h.vector_rank, h.text_rank) for h in hybrid] == [(r["vector"], r["text"]) for _, _, r in expected]
    assert any(r["vector"] is None for _, _, r in expected) and any(r["text"] is None for _, _, r in expected)


def test_each_fusion_can_order_the_same_legs_differently(settings, collection_name, fake_model):
    engine = Engine(settings, model=fake_model)
    engine.ingest(collection_name, _corpus(), ChunkingConfig())
    with open_primary(settings) as conn:
        orders = {
            fusion: [
                hit.id
                for hit in engine.search(
                    collection_name, QUERY, SearchParams(k=20, candidates=CANDIDATES, fusion=fusion), conn=conn
                ).hits
            ]
            for fusion in ("rrf", "linear", "linear_max")
        }
    assert orders["rrf"] != orders["linear"] != orders["linear_max"] != orders["rrf"]
