"""The storage room: everything that reads or writes the collection tables.

Nothing here knows about the engine, the CLI or HTTP; psycopg's errors leave this
package as psycopg raises them and become ours in `retriever.engine` (what this package
raises itself is ours already).

- `database`     where the database is (DATABASE_URL or the embedded server) and one connection
- `embedded`     the embedded PostgreSQL 18 + pgvector, started on demand
- `migrations`   ordered, recorded schema changes, as frozen SQL
- `tables`       names: schema, collection names, tables, indexes, the write lock
- `collections`  the registry row and the chunk table, its HNSW and GIN indexes
- `bm25`         BM25's constants and formulas (k1, b, idf, term weight), once
- `postings`     BM25 posting blocks: DDL, append, rebuild beside the live ones, swap
- `writer`       one batch of documents in one transaction: deletes, COPY, hashes
- `batches`      the background writer of one ingest (bulk loads on two connections)
- `pipeline`     files and records → chunks → embeddings → the writer
- `maintenance`  VACUUM ANALYZE, index rebuilds, sizes
"""
