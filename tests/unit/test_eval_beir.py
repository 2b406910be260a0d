"""Reading BEIR-format collections."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from eval import DatasetError, iter_corpus, load_beir

FIXTURE = Path(__file__).parents[1] / "fixtures" / "tiny_beir"

CORPUS = (
    '{"_id": "0042", "title": "Zero", "text": "leading zero id"}\n'
    '{"_id": 7, "title": "Seven", "text": "numeric id in the file"}\n'
)
QUERIES = '{"_id": "007", "text": "first"}\n{"_id": "q2", "text": "second"}\n'


def make_collection(root: Path, qrels: str, *, split: str = "test", corpus_gz: bool = False) -> Path:
    """Write a two-document collection with the given qrels text for ``split``."""
    (root / "qrels").mkdir(parents=True)
    if corpus_gz:
        (root / "corpus.jsonl.gz").write_bytes(gzip.compress(CORPUS.encode()))
    else:
        (root / "corpus.jsonl").write_text(CORPUS)
    (root / "queries.jsonl").write_text(QUERIES)
    (root / "qrels" / f"{split}.tsv").write_bytes(qrels.encode())
    return root


def test_fixture_keeps_judged_queries_and_relevant_documents_only() -> None:
    dataset = load_beir(FIXTURE)
    assert dataset.split == "test"
    assert dataset.queries == {
        "q1": "How do bees tell each other where flowers are?",
        "q2": "Why do some volcanoes erupt explosively?",
        "q3": "How do I keep a sourdough starter alive?",
        "q4": "repair a punctured bicycle inner tube",
    }
    assert dataset.qrels == {
        "q1": {"bee-1": 2},
        "q2": {"vol-2": 1},
        "q3": {"bread-1": 1},
        "q4": {"bike-2": 1},
    }
    assert dataset.skipped_queries == 1  # q5 has only a score-0 row
    assert dataset.corpus_path == FIXTURE / "corpus.jsonl"


def test_other_split_reads_its_own_qrels() -> None:
    dataset = load_beir(FIXTURE, split="train")
    assert dataset.qrels == {"q6": {"bee-2": 1}, "q7": {"bread-3": 1}}
    assert dataset.skipped_queries == 0


def test_ids_are_strings_even_when_they_look_numeric(tmp_path: Path) -> None:
    root = make_collection(tmp_path, "query-id\tcorpus-id\tscore\n007\t0042\t1\n")
    dataset = load_beir(root)
    assert dataset.qrels == {"007": {"0042": 1}}
    assert dataset.queries == {"007": "first"}


def test_gzipped_corpus_reads_like_plain(tmp_path: Path) -> None:
    plain = make_collection(tmp_path / "plain", "q2\t7\t1\n")
    gz = make_collection(tmp_path / "gz", "q2\t7\t1\n", corpus_gz=True)
    gz_dataset = load_beir(gz)
    assert gz_dataset.corpus_path.name == "corpus.jsonl.gz"
    gz_records = list(iter_corpus(gz_dataset.corpus_path))
    assert gz_records == list(iter_corpus(load_beir(plain).corpus_path))
    assert [record["title"] for record in gz_records] == ["Zero", "Seven"]


def test_crlf_qrels_read_like_lf(tmp_path: Path) -> None:
    lines = ["query-id\tcorpus-id\tscore", "007\t0042\t1", "q2\t7\t2"]
    crlf = load_beir(make_collection(tmp_path / "crlf", "\r\n".join(lines) + "\r\n"))
    lf = load_beir(make_collection(tmp_path / "lf", "\n".join(lines) + "\n"))
    assert crlf.qrels == lf.qrels == {"007": {"0042": 1}, "q2": {"7": 2}}


def test_header_is_optional(tmp_path: Path) -> None:
    dataset = load_beir(make_collection(tmp_path, "007\t0042\t1\nq2\t7\t1\n"))
    assert dataset.qrels == {"007": {"0042": 1}, "q2": {"7": 1}}


def test_score_zero_rows_are_not_relevant_and_their_queries_are_counted(
    tmp_path: Path,
) -> None:
    dataset = load_beir(make_collection(tmp_path, "007\t0042\t1\n007\t7\t0\nq2\t7\t0\n"))
    assert dataset.qrels == {"007": {"0042": 1}}
    assert list(dataset.queries) == ["007"]
    assert dataset.skipped_queries == 1


def test_judged_query_missing_from_queries_file_is_skipped_and_counted(
    tmp_path: Path,
) -> None:
    dataset = load_beir(make_collection(tmp_path, "007\t0042\t1\nghost\t7\t1\n"))
    assert list(dataset.qrels) == ["007"]
    assert dataset.skipped_queries == 1


def test_missing_split_lists_available_splits(tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(FIXTURE, root)
    with pytest.raises(DatasetError, match=r"split 'dev'.*available splits: test, train"):
        load_beir(root, split="dev")


def test_missing_folder_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="dataset folder not found"):
        load_beir(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("corpus.jsonl", "corpus file not found"),
        ("queries.jsonl", "queries file not found"),
    ],
)
def test_missing_file_is_named(tmp_path: Path, name: str, message: str) -> None:
    root = make_collection(tmp_path, "007\t0042\t1\n")
    (root / name).unlink()
    with pytest.raises(DatasetError, match=message):
        load_beir(root)


@pytest.mark.parametrize("bad_line", ["q2 7 1", "q2\t7", "q2\t7\tyes", "q2\t7\t1\textra", "\t7\t1"])
def test_malformed_qrels_line_is_reported_with_its_number(tmp_path: Path, bad_line: str) -> None:
    root = make_collection(tmp_path, f"query-id\tcorpus-id\tscore\n007\t0042\t1\n{bad_line}\n")
    with pytest.raises(DatasetError, match=r"test\.tsv: line 3:"):
        load_beir(root)


def test_split_without_any_relevant_document_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no query with a relevant document"):
        load_beir(make_collection(tmp_path, "007\t0042\t0\n"))


def test_invalid_corpus_json_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"_id": "a", "text": "fine"}\n{not json\n')
    with pytest.raises(DatasetError, match="line 2: invalid JSON"):
        list(iter_corpus(path))


def test_dataset_error_is_a_value_error() -> None:
    assert issubclass(DatasetError, ValueError)
