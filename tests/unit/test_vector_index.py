"""A collection's vector index settings, checked against pgvector's limits before any SQL runs.

Specification: HNSW m 2–100, ef_construction 4–1000 and at least 2 × m; IVFFlat lists
1–32768; an index over at most 2,000 dimensions stored as `vector`, 4,000 as `halfvec`
(the error for 3,072-dim `vector` names halfvec as the way out); a search's `probes`
1–32768; each refusal is one line. The default probes read √lists cells, and more when
`candidates` rows would not fit in them. The statements name the index's method, operator
class and parameters, and a search sets `ivfflat.probes` (and, under a filter,
`ivfflat.iterative_scan`) transaction-locally.
"""

from __future__ import annotations

import pytest
from psycopg import sql

from retriever import InputError, SearchParams, Settings, VectorIndex
from retriever.cli.options import CliError, vector_index_from
from retriever.search_settings import search_settings, session_settings
from retriever.store.tables import Collection
from retriever.store.vector_index import column_type, default_probes, index_statement


@pytest.mark.parametrize(
    ("index", "dimensions", "message"),
    [
        (VectorIndex(m=1), 384, "m must be between 2 and 100, got 1"),
        (VectorIndex(m=101, ef_construction=500), 384, "m must be between 2 and 100, got 101"),
        (VectorIndex(ef_construction=3), 384, "ef_construction must be between 4 and 1000, got 3"),
        (VectorIndex(ef_construction=1001), 384, "ef_construction must be between 4 and 1000, got 1001"),
        (VectorIndex(m=40, ef_construction=64), 384, "ef_construction must be at least 2 × m (80), got 64"),
        (VectorIndex(kind="ivfflat", lists=0), 384, "lists must be between 1 and 32768, got 0"),
        (VectorIndex(kind="ivfflat", lists=32769), 384, "lists must be between 1 and 32768, got 32769"),
        (VectorIndex(), 3072, "a vector index holds at most 2000 dimensions, these embeddings have 3072"),
        (VectorIndex(storage="halfvec"), 4001, "a halfvec index holds at most 4000 dimensions"),
        (VectorIndex(kind="annoy"), 384, "unknown vector index 'annoy': use one of hnsw, ivfflat"),  # type: ignore[arg-type]
        (VectorIndex(storage="float8"), 384, "unknown vector storage 'float8'"),  # type: ignore[arg-type]
        (VectorIndex(m="16"), 384, "m must be a whole number"),  # type: ignore[arg-type]
    ],
)
def test_settings_outside_pgvectors_limits_are_one_line_errors(index, dimensions, message):
    with pytest.raises(InputError) as raised:
        index.validate(dimensions)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_3072_dimensions_as_vector_points_to_halfvec():
    with pytest.raises(InputError, match="use storage halfvec"):
        VectorIndex().validate(3072)


@pytest.mark.parametrize(
    ("index", "dimensions"),
    [
        (VectorIndex(), 2000),
        (VectorIndex(storage="halfvec"), 3072),
        (VectorIndex(kind="ivfflat", storage="halfvec", lists=32768), 4000),
        (VectorIndex(m=2, ef_construction=4), 8),
        (VectorIndex(m=100, ef_construction=1000), 8),
        (VectorIndex(kind="ivfflat", lists=1, m=100), 8),  # the other kind's parameters are ignored
    ],
)
def test_settings_within_the_limits_are_accepted(index, dimensions):
    assert index.validate(dimensions) is index


def test_parameters_of_the_other_kind_do_not_make_another_index():
    assert VectorIndex(kind="ivfflat", m=32).same_as(VectorIndex(kind="ivfflat"))
    assert not VectorIndex(m=32, ef_construction=64).same_as(VectorIndex())
    assert VectorIndex(kind="ivfflat", lists=7).to_json() == {"kind": "ivfflat", "storage": "vector", "lists": 7}


@pytest.mark.parametrize(
    ("lists", "rows", "candidates", "probes"),
    [
        (100, 1_000_000, 100, 10),  # √lists
        (1000, 1_000_000, 100, 32),
        (100, 5_000, 1000, 40),  # 1000 candidates need 2 × 1000 / 50 cells of 50 rows
        (100, 50, 100, 100),  # never more than the lists
        (1, 1, 100, 1),
    ],
)
def test_default_probes_read_root_lists_cells_and_enough_for_the_candidates(lists, rows, candidates, probes):
    assert default_probes(lists, rows, candidates) == probes


@pytest.mark.parametrize("probes", [0, -1, 32769, True])
def test_probes_outside_1_to_32768_are_refused(probes):
    with pytest.raises(InputError, match="probes must be between 1 and 32768"):
        SearchParams(probes=probes).validate(Settings())


def test_index_statement_names_method_operator_class_and_parameters():
    table, name = sql.Identifier("hybrid_rag", "docs"), sql.Identifier("docs_embedding_hnsw")
    hnsw = index_statement(VectorIndex(m=32, ef_construction=128), table=table, column="embedding", name=name)
    ivf = index_statement(
        VectorIndex(kind="ivfflat", storage="halfvec", lists=7), table=table, column="embedding", name=name
    )
    assert hnsw.as_string() == (
        'CREATE INDEX IF NOT EXISTS "docs_embedding_hnsw" ON "hybrid_rag"."docs" '
        'USING hnsw ("embedding" vector_cosine_ops) WITH (m = 32, ef_construction = 128)'
    )
    assert 'USING ivfflat ("embedding" halfvec_cosine_ops) WITH (lists = 7)' in ivf.as_string()
    assert column_type("halfvec", 3072).as_string() == "halfvec(3072)"
    with pytest.raises(InputError):
        index_statement(VectorIndex(kind="hnsw) WITH (x"), table=table, column="embedding", name=name)  # type: ignore[arg-type]


def _collection(**fields) -> Collection:
    return Collection("docs", "m", 8, "english", 5000, 0, None, **fields)  # type: ignore[arg-type]


def test_a_search_sets_probes_from_the_request_or_the_collection():
    chosen = search_settings(
        SearchParams(),
        Settings(),
        iterative_scan=False,
        collection=_collection(index_kind="ivfflat", ivfflat_lists=100),
    )
    assert chosen["ivfflat.probes"] == "10"
    asked = search_settings(SearchParams(probes=3), Settings(), iterative_scan=False, collection=_collection())
    assert asked["ivfflat.probes"] == "3"


def test_a_filtered_search_scans_ivfflat_iteratively_as_it_does_hnsw():
    chosen = search_settings(SearchParams(filter={"a": 1}), Settings(), iterative_scan=True)
    assert chosen["ivfflat.iterative_scan"] == chosen["hnsw.iterative_scan"] == "relaxed_order"
    assert "hnsw.iterative_scan" not in search_settings(SearchParams(filter={"a": 1}), Settings(), iterative_scan=False)


def test_search_settings_are_transaction_local_and_reach_citus_shards_for_a_distributed_collection():
    ((plain, values),) = session_settings(SearchParams(), Settings(), iterative_scan=True, collection=_collection())
    assert plain.as_string().startswith("SELECT set_config('hnsw.ef_search', %(s0)s, true)") and values["s0"] == "100"
    citus = session_settings(SearchParams(), Settings(), iterative_scan=True, collection=_collection(distributed=True))
    statements = [statement.as_string() for statement, _ in citus]
    assert statements[0] == "SET LOCAL citus.propagate_set_commands = 'local'"
    assert "SET LOCAL hnsw.ef_search = '100'" in statements and "SET LOCAL jit = 'off'" in statements
    assert all(statement.startswith("SET LOCAL ") for statement in statements)


def test_the_cli_options_make_an_index_only_when_given_and_refuse_the_other_kinds_parameters():
    assert vector_index_from(None, None, None, None, None) is None
    assert vector_index_from(None, "halfvec", None, None, None) == VectorIndex(storage="halfvec")
    assert vector_index_from(None, None, None, None, 500) == VectorIndex(kind="ivfflat", lists=500)
    assert vector_index_from("hnsw", None, 32, 128, None) == VectorIndex(m=32, ef_construction=128)
    with pytest.raises(CliError, match="--lists does not apply to --index hnsw"):
        vector_index_from("hnsw", None, None, None, 10)
    with pytest.raises(CliError, match="--hnsw-m, --ef-construction does not apply to --index ivfflat"):
        vector_index_from("ivfflat", None, 8, 32, None)
