"""Splitting documents into chunks, chunking settings, document fingerprints."""

import hashlib
import itertools
import random

import pytest

from ingest import (
    ChunkingConfig,
    IngestInputError,
    SourceDocument,
    document_hash,
    split_document,
)

SMALL = ChunkingConfig(chunk_size=120, chunk_overlap=30)


def doc(text: str, title: str | None = None, **metadata: object) -> SourceDocument:
    return SourceDocument("kb/doc.md", text, title, "kb/doc.md", dict(metadata))


def prose(paragraphs: int, seed: int = 0) -> str:
    words = [
        "the",
        "chain",
        "wears",
        "so",
        "check",
        "it",
        "with",
        "a",
        "gauge",
        "every",
        "km",
    ]
    rng = random.Random(seed)
    return "\n\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(5, 60))) + "." for _ in range(paragraphs))


TEXTS = [
    prose(12),
    prose(30, seed=1),
    "ab " * 300,  # the same passage over and over: offsets must not jump back
    "x" * 1000,  # no separators at all
    "  leading and trailing whitespace  \n\n" * 20,
]


def test_default_config_suits_a_256_token_model() -> None:
    assert (ChunkingConfig().chunk_size, ChunkingConfig().chunk_overlap) == (1000, 150)


def test_short_document_is_one_chunk_with_a_deterministic_id() -> None:
    [chunk] = split_document(doc("A short note."), ChunkingConfig())
    assert (chunk.id, chunk.document_id, chunk.index) == ("kb/doc.md:0", "kb/doc.md", 0)
    assert chunk.content == "A short note."


def test_whitespace_only_document_has_no_chunks() -> None:
    assert split_document(doc(" \n\t\n "), ChunkingConfig()) == []


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("title", [None, "Chain Wear"])
def test_start_index_points_at_the_chunk_text_in_the_document(text: str, title: str | None) -> None:
    document = doc(text, title)
    prefix = f"{title}\n" if title else ""
    chunks = split_document(document, SMALL)
    assert len(chunks) > 1
    starts = [c.metadata["start_index"] for c in chunks]
    assert starts == sorted(set(starts))
    for chunk in chunks:
        assert chunk.content.startswith(prefix)
        body = chunk.content[len(prefix) :]
        start = chunk.metadata["start_index"]
        assert body
        assert document.text[start : start + len(body)] == body
        assert len(body) <= SMALL.chunk_size


def test_chunks_cover_the_whole_text() -> None:
    text = prose(20, seed=3)
    chunks = split_document(doc(text), SMALL)
    covered = set()
    for chunk in chunks:
        start = chunk.metadata["start_index"]
        covered.update(range(start, start + len(chunk.content)))
    assert {i for i, char in enumerate(text) if not char.isspace()} <= covered


def test_neighbouring_chunks_overlap_when_overlap_is_set() -> None:
    text = "word " * 400
    overlapping = split_document(doc(text), ChunkingConfig(chunk_size=100, chunk_overlap=40))
    for before, after in itertools.pairwise(overlapping):
        end = before.metadata["start_index"] + len(before.content)
        assert 0 < end - after.metadata["start_index"] <= 40
    disjoint = split_document(doc(text), ChunkingConfig(chunk_size=100, chunk_overlap=0))
    for before, after in itertools.pairwise(disjoint):
        assert after.metadata["start_index"] >= before.metadata["start_index"] + len(before.content)


def test_every_chunk_is_prefixed_with_the_title() -> None:
    chunks = split_document(doc(prose(10), "Chain Wear"), SMALL)
    assert len(chunks) > 2
    assert all(c.content.startswith("Chain Wear\n") for c in chunks)
    assert all(c.metadata["title"] == "Chain Wear" for c in chunks)


def test_untitled_chunk_has_no_prefix_and_a_null_title() -> None:
    [chunk] = split_document(doc("Body only."), ChunkingConfig())
    assert chunk.content == "Body only."
    assert "title" in chunk.metadata
    assert chunk.metadata["title"] is None


def test_chunk_metadata_keeps_user_keys_but_ours_win() -> None:
    document = doc(prose(6), "T", lang="en", source="spoofed", chunk_index=99)
    chunks = split_document(document, SMALL)
    for index, chunk in enumerate(chunks):
        assert chunk.metadata["lang"] == "en"
        assert chunk.metadata["source"] == "kb/doc.md"
        assert chunk.metadata["chunk_index"] == index == chunk.index
        assert chunk.id == f"kb/doc.md:{index}"
    assert document.metadata["source"] == "spoofed"  # the document itself is untouched


def test_content_hash_is_sha256_of_content() -> None:
    for chunk in split_document(doc(prose(5), "T"), SMALL):
        assert chunk.content_hash == hashlib.sha256(chunk.content.encode()).hexdigest()


def test_splitting_is_deterministic() -> None:
    text = prose(15, seed=7)
    assert split_document(doc(text, "T", a=1), SMALL) == split_document(doc(text, "T", a=1), SMALL)


def test_largest_chunk_size_is_accepted() -> None:
    assert ChunkingConfig(chunk_size=100_000).chunk_size == 100_000


def test_runaway_title_is_cut_in_chunk_content_but_kept_whole_in_metadata() -> None:
    title = " ".join(f"word{i}" for i in range(200_000))
    chunks = split_document(doc("Body text of the record.", title), ChunkingConfig())
    [chunk] = chunks
    prefix, body = chunk.content.split("\n")
    assert body == "Body text of the record."
    assert len(prefix) <= 300
    assert prefix.endswith(" word43…")  # cut at a word, marked as cut
    assert title.startswith(prefix[:-1])
    assert chunk.metadata["title"] == title
    [whole] = split_document(doc("Body.", "t" * 300), ChunkingConfig())  # 300 characters still head it whole
    assert whole.content == "t" * 300 + "\nBody."


@pytest.mark.parametrize(
    ("size", "overlap", "message"),
    [
        (0, 0, "chunk_size must be a positive integer, got 0"),
        (-5, 0, "chunk_size must be a positive integer"),
        (True, 0, "chunk_size must be a positive integer"),
        (
            100,
            100,
            r"an integer from 0 to chunk_size - 1 \(99\), got 100",
        ),
        (100, -1, "chunk_overlap must be"),
        (100, 2.5, "chunk_overlap must be"),
        (100_001, 150, r"chunk_size must be at most 100,000 characters .*, got 100,001"),
    ],
)
def test_invalid_chunking_config_is_rejected(size: int, overlap: int, message: str) -> None:
    with pytest.raises(IngestInputError, match=message):
        ChunkingConfig(chunk_size=size, chunk_overlap=overlap)


def test_document_hash_is_stable_for_equal_input() -> None:
    first = document_hash(doc("text", "T", b=2, a=1), SMALL)
    assert first == document_hash(doc("text", "T", a=1, b=2), ChunkingConfig(120, 30))
    assert len(first) == 64
    assert set(first) <= set("0123456789abcdef")


@pytest.mark.parametrize(
    "changed",
    [
        (doc("text!", "T", a=1), SMALL),
        (doc("text", "T2", a=1), SMALL),
        (doc("text", None, a=1), SMALL),
        (doc("text", "T", a=2), SMALL),
        (doc("text", "T", a=1, b=None), SMALL),
        (doc("text", "T", a=1), ChunkingConfig(121, 30)),
        (doc("text", "T", a=1), ChunkingConfig(120, 31)),
        (SourceDocument("kb/doc.md", "text", "T", "moved/doc.md", {"a": 1}), SMALL),
        (SourceDocument("kb/doc.md", "text", "T", "kb/doc.md", {"a": 1}, page_starts=(0,)), SMALL),
    ],
)
def test_document_hash_changes_with_anything_that_shapes_the_chunks(
    changed: tuple[SourceDocument, ChunkingConfig],
) -> None:
    assert document_hash(*changed) != document_hash(doc("text", "T", a=1), SMALL)


def test_document_hash_rejects_metadata_that_is_not_json() -> None:
    with pytest.raises(IngestInputError, match="not JSON"):
        document_hash(doc("text", when=object()), SMALL)
