"""A collection's topics in the database: the chunk vectors read, the topics and assignments written.

`hybrid_rag.topics` holds one row per topic (number, label, distinctive terms, size,
centroid, and the metadata key its chunks carry the number under); each chunk's topic is
the integer at that key of its metadata, so a search filters by topic like by any other
field (`{"topic": 3}`) and the GIN index serves it. New chunks are given the nearest
topic when they are written (`assign_topics`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import psycopg
from psycopg import sql

from retriever.errors import InputError
from retriever.store.bm25 import idf_sql
from retriever.store.plans import Execute, Plan, run_ops
from retriever.store.tables import REGISTERED_EMBEDDINGS, WRITE_LOCK, Collection

__all__ = ["StoredTopic", "assign_topics", "chunk_vectors", "distinctive_terms", "key_in_use", "save_topics", "topics"]


@dataclass(frozen=True, slots=True)
class StoredTopic:
    """One topic: its number, label, most distinctive terms (best first) and chunks."""

    topic: int
    label: str
    terms: list[str]
    size: int


def chunk_vectors(conn: psycopg.Connection, collection: Collection) -> tuple[np.ndarray, np.ndarray]:
    """Every chunk's key (shape (n,), int64) and embedding (shape (n, dimensions), float32), in key order."""
    # as `vector` whatever the column's storage: a `halfvec` would come back as pgvector's HalfVector
    statement = sql.SQL("SELECT key, embedding::vector FROM {} ORDER BY key").format(collection.table())
    rows = conn.execute(statement).fetchall()
    keys = np.array([key for key, _ in rows], dtype=np.int64)
    vectors = np.array([vector for _, vector in rows], dtype=np.float32).reshape(len(rows), collection.dimensions)
    return keys, vectors


def key_in_use(conn: psycopg.Connection, collection: Collection, key: str) -> bool:
    """Whether some chunk's own metadata (not an earlier topics run's) holds `key`."""
    ours = conn.execute(
        "SELECT EXISTS (SELECT FROM hybrid_rag.topics WHERE collection = %s AND metadata_key = %s)",
        (collection.name, key),
    ).fetchone()
    if ours and ours[0]:
        return False
    found = conn.execute(
        sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE metadata ? %s)").format(collection.table()), (key,)
    )
    row = found.fetchone()
    return bool(row and row[0])


# Chunk keys and their topics, as rows `a` (`a.key`, and the topic `_TOPIC`): one array unnested
# with its positions, not `unnest(keys, topics)`, whose rows Citus cannot pass between nodes.
_ASSIGNMENT = sql.SQL("unnest(%(keys)s::bigint[]) WITH ORDINALITY AS a(key, position)")
_TOPIC = sql.SQL("(%(topics)s::integer[])[a.position]")

_DISTINCTIVE = """
WITH assigned AS (
    SELECT {topic} AS topic, c.tsv
    FROM {chunks} c JOIN {assignment} ON a.key = c.key
), frequencies AS (
    SELECT a.topic, u.lexeme AS term, sum(cardinality(u.positions))::float8 AS tf
    FROM assigned a CROSS JOIN LATERAL unnest(a.tsv) AS u
    GROUP BY a.topic, u.lexeme
), scored AS (
    SELECT f.topic, f.term,
           row_number() OVER (PARTITION BY f.topic ORDER BY f.tf * {idf} DESC, f.term) AS place
    FROM frequencies f
    JOIN {terms} d ON d.term = f.term
    CROSS JOIN (SELECT chunk_count::float8 AS n FROM hybrid_rag.collections WHERE name = %(name)s) s
    WHERE d.df > 0 AND length(f.term) > 1 AND f.term !~ '^[0-9.,]+$'  -- no initials or numbers in labels
)
SELECT topic, array_agg(term ORDER BY place) FROM scored WHERE place <= %(terms)s GROUP BY topic
"""


def distinctive_terms(
    conn: psycopg.Connection, collection: Collection, keys: np.ndarray, topics: np.ndarray, *, terms: int = 10
) -> dict[int, list[str]]:
    """Per topic, its `terms` most distinctive lexemes, best first (single letters and numbers left out).

    A lexeme's weight in a topic is its frequency in the topic's chunks times its BM25 idf in
    the collection (`retriever.store.bm25.idf`): frequent in the topic, rare elsewhere.
    """
    statement = sql.SQL(_DISTINCTIVE).format(
        chunks=collection.table(),
        terms=collection.table("terms"),
        idf=idf_sql("s.n", "d.df::float8"),
        assignment=_ASSIGNMENT,
        topic=_TOPIC,
    )
    rows = conn.execute(
        statement, {"keys": keys.tolist(), "topics": topics.tolist(), "name": collection.name, "terms": terms}
    ).fetchall()
    return {int(topic): list(found) for topic, found in rows}


def save_topics(
    conn: psycopg.Connection,
    collection: Collection,
    found: Sequence[StoredTopic],
    centroids: np.ndarray,
    keys: np.ndarray,
    topics: np.ndarray,
    *,
    key: str,
) -> None:
    """Replace the collection's topics and write each chunk's topic number into its metadata under `key`.

    In one transaction under the collection's write lock: searches see the old topics or the
    new ones, never a mix, and chunks written since `keys` were read get the nearest new topic.
    Raises `InputError` when a re-embed swapped in other vectors since `centroids` were computed.
    """
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(WRITE_LOCK, {"collection": collection.name})
        now = cur.execute(REGISTERED_EMBEDDINGS, {"collection": collection.name}).fetchone()
        if now != (collection.embedding_model, collection.dimensions):
            raise InputError(
                f"collection {collection.name!r} was re-embedded while its topics were computed: run topics again"
            )
        previous = cur.execute(
            "DELETE FROM hybrid_rag.topics WHERE collection = %s RETURNING metadata_key", (collection.name,)
        ).fetchall()
        for (old_key,) in set(previous) - {(key,)}:
            cur.execute(
                sql.SQL("UPDATE {} SET metadata = metadata - %s WHERE metadata ? %s").format(collection.table()),
                (old_key, old_key),
            )
        cur.executemany(
            "INSERT INTO hybrid_rag.topics (collection, topic, label, terms, size, centroid, metadata_key) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [
                (collection.name, item.topic, item.label, item.terms, item.size, centroids[item.topic], key)
                for item in found
            ],
        )
        cur.execute(
            sql.SQL(
                "UPDATE {chunks} c SET metadata = jsonb_set(c.metadata, ARRAY[%(key)s::text], {topic}::text::jsonb) "
                "FROM {assignment} WHERE c.key = a.key"
            ).format(chunks=collection.table(), assignment=_ASSIGNMENT, topic=_TOPIC),
            {"key": key, "keys": keys.tolist(), "topics": topics.tolist()},
        )
        written_since = sql.SQL("c.key <> ALL(%(keys)s::bigint[])")
        run_ops(cur, assign_topics(collection, written_since, {"keys": keys.tolist()}, overwrite=True))


def assign_topics(
    collection: Collection, chunks: sql.Composable, values: dict[str, object], *, overwrite: bool = False
) -> Plan[None]:
    """The steps that give the chunks matching `chunks` (a condition on `c`, its parameters in `values`)
    the topic whose centroid is nearest by cosine distance; nothing in a collection without topics.

    Unless `overwrite`, a chunk whose own metadata holds the topics' key keeps its value. The
    centroids are read first and sent with the update, which then reads no other table: on a
    Citus cluster it runs on every shard as it is.
    """
    found = yield Execute(_TOPICS_OF, {"name": collection.name})
    if not found:
        return
    key, numbers, centroids = found[0]
    own = sql.SQL("" if overwrite else " AND NOT (c.metadata ? %(topic_key)s)")
    statement = sql.SQL(_ASSIGN).format(table=collection.table(), chunks=chunks, own=own)
    yield Execute(statement, {**values, "topic_key": key, "topic_numbers": numbers, "centroids": centroids})


_TOPICS_OF = """
SELECT metadata_key, array_agg(topic ORDER BY topic), array_agg(centroid::text ORDER BY topic)
FROM hybrid_rag.topics WHERE collection = %(name)s GROUP BY metadata_key
"""
_ASSIGN = """
UPDATE {table} c
SET metadata = jsonb_set(c.metadata, ARRAY[%(topic_key)s::text], (  -- immutable functions only, as Citus wants
    SELECT (%(topic_numbers)s::integer[])[t.n]::text::jsonb
    FROM unnest(%(centroids)s::vector[]) WITH ORDINALITY AS t(centroid, n)
    ORDER BY t.centroid <=> c.embedding::vector LIMIT 1
))
WHERE {chunks}{own}
"""


def topics(conn: psycopg.Connection, collection: Collection) -> tuple[str | None, list[StoredTopic]]:
    """The collection's metadata key for topics (None without topics) and its topics by number, sizes as now."""
    rows = conn.execute(
        sql.SQL(
            """
            SELECT t.metadata_key, t.topic, t.label, t.terms, coalesce(n.size, 0)
            FROM hybrid_rag.topics t
            LEFT JOIN (
                SELECT c.metadata -> k.metadata_key AS topic, count(*)::integer AS size
                FROM {chunks} c, (SELECT metadata_key FROM hybrid_rag.topics WHERE collection = %(name)s LIMIT 1) k
                GROUP BY 1
            ) n ON n.topic = to_jsonb(t.topic)
            WHERE t.collection = %(name)s ORDER BY t.topic
            """
        ).format(chunks=collection.table()),
        {"name": collection.name},
    ).fetchall()
    key = rows[0][0] if rows else None
    return key, [StoredTopic(topic, label, list(terms), size) for _, topic, label, terms, size in rows]
