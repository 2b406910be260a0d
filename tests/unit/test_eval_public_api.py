"""The names the eval package exports."""

from __future__ import annotations

import eval as eval_package


def test_public_names() -> None:
    assert sorted(eval_package.__all__) == sorted(
        [
            "EVAL_MODES",
            "METRICS",
            "BeirDataset",
            "Bm25Baseline",
            "DatasetError",
            "EvalParams",
            "SweepGrid",
            "chunks_to_documents",
            "console_table",
            "default_collection_name",
            "embed_queries",
            "fuse_run",
            "iter_corpus",
            "load_beir",
            "per_query",
            "run_eval",
            "run_legs",
            "run_sweep",
            "score_run",
            "sweep_table",
            "validate_results",
            "write_chart",
            "write_markdown",
            "write_results",
            "write_trec_run",
        ]
    )
    assert all(hasattr(eval_package, name) for name in eval_package.__all__)
