"""A runaway title (a whole text pasted as the title) neither fails the load nor hides the document."""

from psycopg import sql

from ingest import ChunkingConfig, iter_records
from retriever import Engine
from retriever.connections import open_primary
from retriever.results import SearchParams

# ~1.2 MB of distinct words: as a chunk prefix it would be a tsvector over PostgreSQL's 1 MB limit.
HUGE_TITLE = " ".join(f"lexeme{i:06d}" for i in range(93_000))


def test_record_with_a_huge_title_is_searchable_beside_a_normal_one(settings, collection_name, fake_model):
    assert len(HUGE_TITLE) > 1_200_000
    records = [
        {
            "id": "huge",
            "title": HUGE_TITLE,
            "text": "A compost heap needs nitrogen-rich greens and carbon-rich browns.",
        },
        {"id": "normal", "title": "Espresso", "text": "Espresso is brewed at about nine bars of pressure."},
    ]
    engine = Engine(settings, model=fake_model)
    report = engine.ingest(collection_name, iter_records(records, source="api"), ChunkingConfig())
    assert report.new_documents == 2

    with open_primary(settings) as conn:

        def found(query: str) -> dict[str, str]:
            hits = engine.search(collection_name, query, SearchParams(k=5, mode="text"), conn=conn).hits
            return {hit.document_id: hit.metadata["title"] for hit in hits}

        assert found("compost heap greens") == {"huge": HUGE_TITLE}  # the full title stays in metadata
        assert list(found("lexeme000007")) == ["huge"]  # its first words head every chunk
        assert found("espresso pressure") == {"normal": "Espresso"}
        table = sql.Identifier("hybrid_rag", collection_name)
        [content] = conn.execute(
            sql.SQL("SELECT content FROM {} WHERE document_id = %s").format(table), ("huge",)
        ).fetchone()
    assert len(content) < 1_000
