"""Evaluate retrieval over BEIR-format collections: read, run, score, report."""

from eval.baseline import Bm25Baseline
from eval.beir import BeirDataset, DatasetError, iter_corpus, load_beir
from eval.documents import chunks_to_documents
from eval.metrics import METRICS, per_query, score_run
from eval.report import (
    console_table,
    validate_results,
    write_chart,
    write_markdown,
    write_results,
    write_trec_run,
)

__all__ = [
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
