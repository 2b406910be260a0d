"""Evaluate retrieval over BEIR-format collections: read, run, score, report.

Importing the package is cheap: the optional 'eval' extra (ir_measures, matplotlib, rank_bm25)
is imported only when a function that needs it runs (``score_run``, ``per_query``,
``write_chart``, building a ``Bm25Baseline``), and raises ``ConfigurationError`` naming the
extra if it is not installed.
"""

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
from eval.runner import EVAL_MODES, EvalParams, default_collection_name, embed_queries, run_eval
from eval.sweep import SweepGrid, fuse_run, run_legs, run_sweep, sweep_table

__all__ = [
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
