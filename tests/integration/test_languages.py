"""A collection's language, chosen at creation, governs how its text is matched, at ingest and at query alike.

Specification: a collection is created in any text search configuration of the server
(`english` by default); its chunks' lexemes and its queries' lexemes both come from that
configuration, so a German collection finds `Kündigungsfrist` for `Kündigungsfristen`
where an English one does not. An unknown language is an input error that names it and
lists the server's configurations. The registry records the language. A collection may
also ignore accents (`cafe` finds `café` and back), on a server with the unaccent
extension (here: Debian's PostgreSQL 15, see tests/postgres15.py); on one without it,
asking is an input error that says so. A language is fixed at creation.
"""

from __future__ import annotations

import threading

import pytest

from ingest import ChunkingConfig, SourceDocument
from retriever import Engine
from retriever.connections import open_primary
from retriever.errors import CollectionNotFound, InputError
from retriever.results import SearchParams
from retriever.store.collections import create_collection, get_collection, list_collections
from retriever.store.pipeline import ingest_documents
from retriever.store.tables import Collection

pytest_plugins = ["postgres15"]  # the `postgres15_settings` fixture

TEXT = SearchParams(mode="text", k=10)

NOTICE = {
    "notice": "Die Kündigungsfrist beträgt drei Monate zum Monatsende.",
    "recipe": "Für den Apfelkuchen braucht man Äpfel, Mehl und Zucker.",
}
CAFES = {
    "accented": "We met at the café near the station.",
    "plain": "The cafe on the corner opens at seven.",
    "other": "The library is closed on Sundays.",
}


def _create(settings, name: str, model, **language) -> Collection:
    with open_primary(settings) as conn:
        return create_collection(conn, name, embedding_model=model.name, dimensions=model.dimensions, **language)


def _collection(settings, name: str, model, texts: dict[str, str], **language) -> Engine:
    """A collection of `texts` (document id → text) in the given language; the engine that searches it."""
    collection = _create(settings, name, model, **language)
    engine = Engine(settings, model=model)
    documents = [
        SourceDocument(document_id=key, text=text, title=None, source="test", metadata={})
        for key, text in texts.items()
    ]
    ingest_documents(engine.connection, collection, model, documents, ChunkingConfig())
    return engine


def _found(engine: Engine, name: str, query: str | None = None, *, like: str | None = None) -> set[str]:
    return {hit.document_id for hit in engine.search(name, query, TEXT, like=like).hits}


def test_a_german_collection_finds_a_word_in_another_inflection(settings, collection_name, fake_model):
    engine = _collection(settings, collection_name, fake_model, NOTICE, language="german")

    assert _found(engine, collection_name, "Kündigungsfristen") == {"notice"}
    assert _found(engine, collection_name, "Apfelkuchens") == {"recipe"}


def test_an_english_collection_does_not_stem_german_words(settings, collection_name, fake_model):
    engine = _collection(settings, collection_name, fake_model, NOTICE, language="english")

    assert _found(engine, collection_name, "Kündigungsfristen") == set()
    assert _found(engine, collection_name, "Kündigungsfrist") == {"notice"}


def test_the_simple_configuration_keeps_every_word_as_written(settings, collection_name, names, fake_model):
    texts = {"runners": "The runners were running.", "walk": "A walk in the park."}
    simple, english = f"{collection_name}_simple", f"{collection_name}_english"
    in_simple = _collection(settings, simple, fake_model, texts, language="simple")
    names.append(simple)
    in_english = _collection(settings, english, fake_model, texts)
    names.append(english)

    assert _found(in_simple, simple, "the") == {"runners", "walk"}  # no stop words
    assert _found(in_simple, simple, "run") == set()  # no stemming
    assert _found(in_simple, simple, "running") == {"runners"}
    assert _found(in_english, english, "the") == set()
    assert _found(in_english, english, "run") == {"runners"}


def test_an_unknown_language_is_an_input_error_naming_it_and_the_available_ones(settings, collection_name, fake_model):
    with pytest.raises(InputError, match=r"unknown language 'klingon'.*german.*simple") as raised:
        _create(settings, collection_name, fake_model, language="klingon")

    assert "\n" not in str(raised.value)
    with pytest.raises(InputError, match="unknown language ''"):
        _create(settings, collection_name, fake_model, language="")
    with open_primary(settings) as conn, pytest.raises(CollectionNotFound):
        get_collection(conn, collection_name)


def test_the_registry_shows_each_collection_language(settings, collection_name, fake_model):
    made = _create(settings, collection_name, fake_model, language="German")  # names fold to lower case

    with open_primary(settings) as conn:
        listed = {c.name: c for c in list_collections(conn)}[collection_name]
    shown = {c.name: c for c in Engine(settings, model=fake_model).collections()}[collection_name]

    assert (made.language, made.accent_insensitive, made.text_config) == ("german", False, "german")
    assert listed == made
    assert (shown.language, shown.language_label) == ("german", "german")


def test_a_collection_created_without_a_language_is_english(settings, collection_name, fake_model):
    made = _create(settings, collection_name, fake_model)

    assert (made.language, made.accent_insensitive, made.text_config) == ("english", False, "english")


def test_a_collection_language_is_fixed_at_creation(settings, collection_name, fake_model):
    _create(settings, collection_name, fake_model, language="german")

    with pytest.raises(InputError, match=r"created with language 'german'.*fixed at creation"):
        _create(settings, collection_name, fake_model, language="english")
    assert _create(settings, collection_name, fake_model).language == "german"
    assert _create(settings, collection_name, fake_model, language="GERMAN").language == "german"


def test_more_like_this_works_in_a_german_collection(settings, collection_name, fake_model):
    texts = {
        **NOTICE,
        "tenant": "Für Mieter gelten gesetzliche Kündigungsfristen von drei Monaten.",
    }
    engine = _collection(settings, collection_name, fake_model, texts, language="german")

    assert _found(engine, collection_name, like="notice") == {"tenant"}


def test_accent_insensitivity_without_the_unaccent_extension_is_an_input_error(
    settings, collection_name, fake_model, without_unaccent
):
    with pytest.raises(InputError, match="unaccent extension, which this server lacks") as raised:
        _create(settings, collection_name, fake_model, language="french", accent_insensitive=True)

    assert "\n" not in str(raised.value)
    with open_primary(settings) as conn, pytest.raises(CollectionNotFound):
        get_collection(conn, collection_name)


# -- on Debian's PostgreSQL 15, which has the unaccent extension ------------------------------


def test_an_accent_insensitive_collection_finds_words_with_and_without_accents(postgres15_settings, fake_model):
    engine = _collection(postgres15_settings, "cafes", fake_model, CAFES, language="english", accent_insensitive=True)

    assert _found(engine, "cafes", "cafe") == {"accented", "plain"}
    assert _found(engine, "cafes", "café") == {"accented", "plain"}


def test_a_collection_that_keeps_accents_tells_cafe_from_cafe(postgres15_settings, fake_model):
    engine = _collection(postgres15_settings, "cafes_kept", fake_model, CAFES, language="english")

    assert _found(engine, "cafes_kept", "cafe") == {"plain"}
    assert _found(engine, "cafes_kept", "café") == {"accented"}


def test_an_accent_insensitive_french_collection_stems_and_ignores_accents(postgres15_settings, fake_model):
    texts = {
        "accented": "Chaque élève prépare un exposé au café.",
        "plain": "Les eleves preparent leurs exposes au cafe.",
        "other": "La bibliothèque ferme le dimanche.",
    }
    engine = _collection(postgres15_settings, "eleves", fake_model, texts, language="french", accent_insensitive=True)
    kept = _collection(postgres15_settings, "eleves_kept", fake_model, texts, language="french")

    assert _found(engine, "eleves", "élèves") == {"accented", "plain"}
    assert _found(engine, "eleves", "eleve") == {"accented", "plain"}
    assert _found(engine, "eleves", "cafe") == {"accented", "plain"}
    assert _found(engine, "eleves", "café") == {"accented", "plain"}
    assert _found(kept, "eleves_kept", "eleve") == {"plain"}
    assert _found(engine, "eleves", like="accented") == {"plain"}


def test_the_registry_shows_an_accent_insensitive_collection(postgres15_settings, fake_model):
    made = _create(postgres15_settings, "shown", fake_model, language="french", accent_insensitive=True)
    shown = {c.name: c for c in Engine(postgres15_settings, model=fake_model).collections()}["shown"]

    assert (made.language, made.accent_insensitive) == ("french", True)
    assert made.text_config == "hybrid_rag.french_unaccent"
    assert shown == made
    assert shown.language_label == "french, accent-insensitive"
    assert _create(postgres15_settings, "shown", fake_model, language="french") == made


def test_an_existing_collection_cannot_start_ignoring_accents(postgres15_settings, fake_model):
    _create(postgres15_settings, "kept", fake_model, language="english")

    with pytest.raises(InputError, match=r"created with language 'english'.*fixed at creation"):
        _create(postgres15_settings, "kept", fake_model, accent_insensitive=True)


def test_concurrent_creators_derive_one_accent_insensitive_configuration(postgres15_settings, fake_model):
    languages = ["german", "german", "spanish", "spanish"]
    start = threading.Barrier(len(languages))
    made: dict[str, Collection] = {}
    failed: list[BaseException] = []

    def create(index: int, language: str) -> None:
        start.wait()
        try:
            made[f"{language}_{index}"] = _create(
                postgres15_settings, f"race_{index}", fake_model, language=language, accent_insensitive=True
            )
        except BaseException as exc:
            failed.append(exc)

    threads = [threading.Thread(target=create, args=pair) for pair in enumerate(languages)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failed == []
    assert {name: c.text_config for name, c in made.items()} == {
        "german_0": "hybrid_rag.german_unaccent",
        "german_1": "hybrid_rag.german_unaccent",
        "spanish_2": "hybrid_rag.spanish_unaccent",
        "spanish_3": "hybrid_rag.spanish_unaccent",
    }
