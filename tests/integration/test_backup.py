"""Backup and restore: a collection to one file and back, whole and consistent, here or in another database.

Specification: `backup` writes a collection's registry row and tables from one snapshot;
`restore` brings them back all or nothing, under the backed-up name or a new one, in the
same database or another server (here Debian's PostgreSQL 15), and searches then return
the same ids with the same scores in every mode. A backup of an older version, which kept
deleted chunks' postings behind tombstones, restores without them. A file that is not a
backup, a missing file, or a name already taken is a one-line error, exit 2.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from psycopg import sql

from hybrid_rag.cli import main
from ingest import ChunkingConfig, SourceDocument
from retriever import CollectionIncomplete, CollectionNotFound, Engine, InputError, SearchParams
from retriever.connections import open_primary

pytest_plugins = ["postgres15"]  # the `postgres15_settings` fixture

SUBJECTS = ["espresso grind", "brake cable", "telescope aperture", "tomato seedlings", "sourdough starter"]
QUERIES = [f"{subject} {extra}" for subject in SUBJECTS for extra in ("tips", "problems", "for beginners", "care")]
MODES = ("hybrid", "vector", "text")


def documents() -> list[SourceDocument]:
    return [
        SourceDocument(
            f"note-{i}",
            f"{SUBJECTS[i % 5]} note {i}: {' '.join(SUBJECTS[(i * j) % 5] for j in range(i % 4 + 1))} problems care",
            f"Note {i}",
            "test",
            {"subject": SUBJECTS[i % 5].split()[0], "n": i, "tags": ["a", "b"][: i % 3]},
        )
        for i in range(40)
    ]


def rankings(engine: Engine, collection: str) -> dict[tuple[str, str], list[tuple[str, float]]]:
    """Every query in every mode: the ranked (chunk id, score) pairs, the filter on half of them."""
    found = {}
    for number, query in enumerate(QUERIES):
        for mode in MODES:
            params = SearchParams(k=10, mode=mode, filter={"n": {"$gte": 10}} if number % 2 else None)
            found[query, mode] = [(hit.id, hit.score) for hit in engine.search(collection, query, params).hits]
    return found


@pytest.fixture
def engine(settings, fake_model) -> Engine:
    return Engine(settings, model=fake_model)


@pytest.fixture
def filled(engine, collection_name) -> str:
    engine.ingest(collection_name, documents(), ChunkingConfig(chunk_size=80, chunk_overlap=0))
    engine.delete_documents(collection_name, ["note-3"])  # blocks it left part-empty, decremented frequencies
    return collection_name


def test_backup_drop_restore_gives_the_same_results_in_every_mode(engine, filled, collection_state, tmp_path):
    before, state = rankings(engine, filled), collection_state(filled)
    report = engine.backup(filled, tmp_path / "kb.zip")
    assert report.rows["chunks"] == len(state["chunks"])
    engine.drop_collection(filled)

    restored = engine.restore(tmp_path / "kb.zip")

    assert restored.collection == filled and restored.rows == report.rows
    assert collection_state(filled) == state
    assert rankings(engine, filled) == before
    assert all(before[query, mode] for query in QUERIES for mode in MODES)


def _as_version_1(current: Path, older: Path, *, tombstones: bytes = b"", orphan: bytes = b"") -> None:
    """Rewrite the backup `current` as version 1 wrote it: blocks without `trimmed`, and a tombstones file
    (`tombstones`: its lines; `orphan`: a block of a deleted chunk that version 1 kept behind its tombstone)."""
    with zipfile.ZipFile(current) as today, zipfile.ZipFile(older, "w") as archive:
        manifest = json.loads(today.read("manifest.json"))
        manifest["version"] = 1
        manifest["tables"]["postings"]["columns"].remove("trimmed")
        manifest["tables"]["tombstones"] = {"columns": ["key"], "rows": tombstones.count(b"\n")}
        for member in today.namelist():
            data = today.read(member)
            if member == "postings.tsv":
                data = b"".join(line.rsplit(b"\t", 1)[0] + b"\n" for line in data.splitlines()) + orphan
            if member != "manifest.json":
                archive.writestr(member, data)
        archive.writestr("tombstones.tsv", tombstones)
        archive.writestr("manifest.json", json.dumps(manifest))


def test_a_version_1_backup_restores_and_one_with_tombstones_without_their_postings(
    engine, filled, collection_state, names, tmp_path
):
    state = collection_state(filled)
    engine.backup(filled, tmp_path / "kb.zip")
    engine.drop_collection(filled)
    _as_version_1(tmp_path / "kb.zip", tmp_path / "plain.zip")
    _as_version_1(
        tmp_path / "kb.zip",
        tmp_path / "buried.zip",
        tombstones=b"999999\n",
        orphan=b"espresso\t1\t{999999}\t{1}\t{4}\n",
    )
    names.append("kb_buried")

    engine.restore(tmp_path / "plain.zip")  # its blocks as they were
    engine.restore(tmp_path / "buried.zip", "kb_buried")  # its blocks cut anew, without the tombstoned posting

    assert collection_state(filled) == state
    assert collection_state("kb_buried") == state


def test_a_restore_under_a_new_name_sits_beside_the_original(engine, filled, names, tmp_path):
    engine.backup(filled, tmp_path / "kb.zip")
    names.append("kb_copy")

    engine.restore(tmp_path / "kb.zip", "kb_copy")

    assert rankings(engine, "kb_copy") == rankings(engine, filled)
    info = {collection.name: collection for collection in engine.collections()}
    assert info["kb_copy"].chunk_count == info[filled].chunk_count
    assert info["kb_copy"].total_length == info[filled].total_length


def test_a_restored_collection_takes_new_writes(engine, filled, names, tmp_path):
    engine.backup(filled, tmp_path / "kb.zip")
    names.append("kb_more")
    engine.restore(tmp_path / "kb.zip", "kb_more")

    engine.ingest("kb_more", [SourceDocument("extra", "zeppelin hangar notes", None, "test", {})], ChunkingConfig())

    hits = engine.search("kb_more", "zeppelin hangar", SearchParams(k=3, mode="text")).hits
    assert hits[0].document_id == "extra"
    with open_primary(engine.settings) as conn:
        keys = conn.execute('SELECT count(*), count(DISTINCT key) FROM hybrid_rag."kb_more"').fetchone()
    assert keys[0] == keys[1]  # the new chunk's key follows the restored ones


def test_a_backup_restores_into_another_server(engine, filled, postgres15_settings, fake_model, tmp_path):
    engine.backup(filled, tmp_path / "kb.zip")
    elsewhere = Engine(postgres15_settings, model=fake_model)

    elsewhere.restore(tmp_path / "kb.zip", "from_eighteen")

    try:
        there, here = rankings(elsewhere, "from_eighteen"), rankings(engine, filled)
        assert {key: [hit_id for hit_id, _ in hits] for key, hits in there.items()} == {
            key: [hit_id for hit_id, _ in hits] for key, hits in here.items()
        }
        for key, hits in there.items():
            assert [score for _, score in hits] == pytest.approx([score for _, score in here[key]], abs=1e-9)
    finally:
        elsewhere.drop_collection("from_eighteen")


def test_a_failed_restore_leaves_nothing_behind(engine, filled, tmp_path):
    engine.backup(filled, tmp_path / "kb.zip")
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(tmp_path / "kb.zip") as source, zipfile.ZipFile(damaged, "w") as target:
        for item in source.namelist():
            data = source.read(item)
            target.writestr(item, data + b"not\ta\tpostings\trow\n" if item == "postings.tsv" else data)

    with pytest.raises(InputError):
        engine.restore(damaged, "kb_damaged")

    assert "kb_damaged" not in {collection.name for collection in engine.collections()}


def test_restore_refuses_a_taken_name_a_missing_file_and_other_files(engine, filled, tmp_path):
    engine.backup(filled, tmp_path / "kb.zip")
    (tmp_path / "notes.zip").write_bytes(b"PK not really a zip")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as other:
        other.writestr("readme.txt", "hello")

    with pytest.raises(InputError, match="exists"):
        engine.restore(tmp_path / "kb.zip")
    with pytest.raises(InputError, match="no backup"):
        engine.restore(tmp_path / "missing.zip", "kb_missing")
    for wrong in ("notes.zip", "other.zip"):
        with pytest.raises(InputError, match="backup"):
            engine.restore(tmp_path / wrong, "kb_wrong")


def test_backup_refuses_a_missing_or_unfinished_collection(engine, collection_name, tmp_path):
    with pytest.raises(CollectionNotFound):
        engine.backup("no_such_collection", tmp_path / "x.zip")
    engine.ingest(collection_name, documents()[:3], ChunkingConfig())
    with open_primary(engine.settings) as conn:  # as a first load killed before its posting index
        conn.execute(
            sql.SQL("DROP INDEX {}").format(engine.collection(collection_name).qualified_index("postings_order"))
        )
    with pytest.raises(CollectionIncomplete):
        engine.backup(collection_name, tmp_path / "x.zip")


def test_the_cli_backs_up_and_restores_and_names_mistakes_in_one_line(engine, filled, names, tmp_path):
    runner = CliRunner()  # the session's database (HYBRID_RAG_HOME); neither command loads a model
    names.append("kb_cli")

    backed = runner.invoke(main, ["backup", "-c", filled, str(tmp_path / "kb.zip")])
    restored = runner.invoke(main, ["restore", str(tmp_path / "kb.zip"), "-c", "kb_cli"])
    taken = runner.invoke(main, ["restore", str(tmp_path / "kb.zip"), "-c", "kb_cli"])
    missing = runner.invoke(main, ["restore", str(tmp_path / "nothing.zip")])

    assert backed.exit_code == 0 and "chunks" in backed.output
    assert restored.exit_code == 0 and "kb_cli" in restored.output
    assert rankings(engine, "kb_cli") == rankings(engine, filled)
    for mistake in (taken, missing):
        assert mistake.exit_code == 2 and len(mistake.output.strip().splitlines()) == 1
        assert "Traceback" not in mistake.output


def test_topics_travel_with_a_backup(engine, filled, names, tmp_path):
    found = engine.find_topics(filled, 3)
    engine.backup(filled, tmp_path / "kb.zip")
    names.append("kb_topics")

    report = engine.restore(tmp_path / "kb.zip", "kb_topics")

    assert report.rows["topics"] == 3
    assert engine.topics("kb_topics") == dataclasses.replace(found, collection="kb_topics")
    hits = engine.search("kb_topics", "brake cable", SearchParams(k=20, mode="vector", filter={"topic": 1})).hits
    assert hits and {hit.metadata["topic"] for hit in hits} == {1}


def test_a_failed_backup_leaves_the_previous_file_whole_and_nothing_beside_it(engine, filled, tmp_path):
    engine.backup(filled, tmp_path / "kb.zip")
    before = (tmp_path / "kb.zip").read_bytes()

    with pytest.raises(CollectionNotFound):
        engine.backup("no_such_collection", tmp_path / "kb.zip")
    with pytest.raises(InputError, match="cannot write the backup"):
        engine.backup(filled, tmp_path / "no-such-folder" / "kb.zip")

    assert (tmp_path / "kb.zip").read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["kb.zip"]


@pytest.mark.parametrize(
    "damage",
    [
        lambda manifest: manifest.pop("collection"),
        lambda manifest: manifest.update(tables=[]),
        lambda manifest: manifest["collection"].update(dimensions="many"),
        lambda manifest: manifest["collection"].update(created_at=None),
    ],
    ids=["no collection", "tables not an object", "dimensions not a number", "no creation time"],
)
def test_a_damaged_manifest_is_an_input_error(engine, filled, tmp_path, damage):
    engine.backup(filled, tmp_path / "kb.zip")
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(tmp_path / "kb.zip") as source, zipfile.ZipFile(damaged, "w") as target:
        for item in source.namelist():
            if item == "manifest.json":
                manifest = json.loads(source.read(item))
                damage(manifest)
                target.writestr(item, json.dumps(manifest))
            else:
                target.writestr(item, source.read(item))

    with pytest.raises(InputError, match="damaged"):
        engine.restore(damaged, "kb_damaged")
