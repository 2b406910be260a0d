"""Reader for BEIR-format test collections.

A collection is a folder holding ``corpus.jsonl`` (or ``corpus.jsonl.gz``),
``queries.jsonl`` and ``qrels/<split>.tsv``; see Thakur et al., "BEIR",
NeurIPS 2021 Datasets & Benchmarks. Ids are always read as strings.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Container, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

_CORPUS_NAMES = ("corpus.jsonl", "corpus.jsonl.gz")
_QRELS_HEADER = "query-id"


class DatasetError(ValueError):
    """A BEIR collection is missing a file or holds a malformed line."""


@dataclass(frozen=True)
class BeirDataset:
    """A loaded split: judged queries, their relevant documents, and where the corpus is."""

    root: Path
    split: str
    queries: dict[str, str]
    """Judged queries only: query id -> query text."""
    qrels: dict[str, dict[str, int]]
    """Query id -> {document id: relevance}, relevance > 0 only."""
    corpus_path: Path
    skipped_queries: int
    """Queries in the qrels with no relevant document, or missing from queries.jsonl."""


def load_beir(root: str | Path, split: str = "test") -> BeirDataset:
    """Load the queries and relevance judgements of one split of a BEIR collection."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    corpus_path = _find_corpus(root)
    qrels_path = _find_qrels(root, split)
    queries_path = root / "queries.jsonl"
    if not queries_path.is_file():
        raise DatasetError(f"queries file not found: {queries_path}")

    judgements = _read_qrels(qrels_path)
    texts = _read_queries(queries_path, wanted=judgements.keys())
    qrels = {qid: relevant for qid, relevant in judgements.items() if relevant and qid in texts}
    if not qrels:
        raise DatasetError(f"{qrels_path} has no query with a relevant document")
    return BeirDataset(
        root=root,
        split=split,
        queries={qid: texts[qid] for qid in qrels},
        qrels=qrels,
        corpus_path=corpus_path,
        skipped_queries=len(judgements) - len(qrels),
    )


def iter_corpus(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the raw records of a ``corpus.jsonl`` or ``corpus.jsonl.gz`` file."""
    with _open_text(path) as lines:
        yield from _iter_jsonl(path, lines)


def _find_corpus(root: Path) -> Path:
    for name in _CORPUS_NAMES:
        if (root / name).is_file():
            return root / name
    raise DatasetError(f"corpus file not found in {root} (expected corpus.jsonl or corpus.jsonl.gz)")


def _find_qrels(root: Path, split: str) -> Path:
    path = root / "qrels" / f"{split}.tsv"
    if path.is_file():
        return path
    available = sorted(p.stem for p in (root / "qrels").glob("*.tsv"))
    listed = ", ".join(available) if available else "none"
    raise DatasetError(f"no qrels for split {split!r} in {root / 'qrels'} (available splits: {listed})")


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """Map every query id in the file to its relevant documents (possibly none)."""
    judgements: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8-sig", newline="") as lines:
        for number, raw in enumerate(lines, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip() or (number == 1 and line.startswith(_QRELS_HEADER)):
                continue
            parsed = _parse_qrels_line(line)
            if parsed is None:
                raise DatasetError(
                    f"{path}: line {number}: expected 'query-id<TAB>corpus-id<TAB>integer score', got {line!r}"
                )
            qid, doc_id, score = parsed
            relevant = judgements.setdefault(qid, {})
            if score > 0:
                relevant[doc_id] = max(score, relevant.get(doc_id, 0))
    return judgements


def _parse_qrels_line(line: str) -> tuple[str, str, int] | None:
    fields = line.split("\t")
    if len(fields) != 3 or not fields[0] or not fields[1]:
        return None
    try:
        return fields[0], fields[1], int(fields[2])
    except ValueError:
        return None


def _read_queries(path: Path, wanted: Container[str]) -> dict[str, str]:
    with path.open(encoding="utf-8-sig") as lines:
        return {
            str(record["_id"]): record.get("text", "")
            for record in _iter_jsonl(path, lines)
            if str(record["_id"]) in wanted
        }


def _iter_jsonl(path: Path, lines: IO[str]) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: line {number}: invalid JSON ({exc.msg})") from None
        if not isinstance(record, dict) or "_id" not in record:
            raise DatasetError(f"{path}: line {number}: expected a JSON object with an '_id'")
        yield record


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig")
    return path.open(encoding="utf-8-sig")
