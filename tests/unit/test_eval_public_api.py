"""The names the eval package exports."""

from __future__ import annotations

import eval as eval_package


def test_public_names() -> None:
    assert sorted(eval_package.__all__) == sorted(
        [
            "METRICS",
            "BeirDataset",
            "Bm25Baseline",
            "DatasetError",
            "chunks_to_documents",
            "console_table",
            "iter_corpus",
            "load_beir",
            "per_query",
            "score_run",
            "validate_results",
            "write_chart",
            "write_markdown",
            "write_results",
            "write_trec_run",
        ]
    )
    assert all(hasattr(eval_package, name) for name in eval_package.__all__)
