"""Settings: one object, read from the environment once, every field documented."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from retriever.errors import ConfigurationError
from retriever.settings import Settings, default_home, get_settings


def test_an_empty_environment_gives_the_documented_defaults():
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.database_url is None
    assert settings.embeddings == "local"
    assert settings.api_keys == ()
    assert settings.statement_timeout_ms == 5000
    assert settings.max_k == 100
    assert settings.max_filter_values == 1000
    assert settings.openai_check_ctx_length is False
    assert settings.data_home == default_home()


def test_values_are_parsed_by_field_type():
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://u@db/x",
            "DATABASE_READ_URL": "postgresql://r1/x, postgresql://r2/x,",
            "HYBRID_RAG_HOME": "/srv/hybrid",
            "EMBEDDINGS": "openai:text-embedding-3-small",
            "API_KEYS": " a , b,,",
            "MAX_K": " 25 ",
            "MAX_FILTER_VALUES": "250",
            "POOL_TIMEOUT_S": "1.5",
            "OPENAI_CHECK_EMBEDDING_CTX_LENGTH": "yes",
        }
    )
    assert settings.database_url == "postgresql://u@db/x"
    assert settings.database_read_urls == ("postgresql://r1/x", "postgresql://r2/x")
    assert settings.home == Path("/srv/hybrid") and settings.data_home == Path("/srv/hybrid")
    assert settings.embeddings == "openai:text-embedding-3-small"
    assert settings.api_keys == ("a", "b")
    assert settings.max_k == 25
    assert settings.max_filter_values == 250
    assert settings.pool_timeout_s == 1.5
    assert settings.openai_check_ctx_length is True


def test_home_expands_the_user_folder():
    assert Settings.from_env({"HYBRID_RAG_HOME": "~/rag"}).home == Path.home() / "rag"


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("on", True), ("FALSE", False), ("no", False)])
def test_booleans_accept_the_usual_spellings(raw, expected):
    assert Settings.from_env({"OPENAI_CHECK_EMBEDDING_CTX_LENGTH": raw}).openai_check_ctx_length is expected


def test_empty_or_blank_values_keep_the_default():
    assert Settings.from_env({"MAX_K": "", "EMBEDDINGS": "   "}) == Settings()


@pytest.mark.parametrize(
    ("var", "raw"),
    [
        ("MAX_K", "ten"),
        ("POOL_SIZE", "2.5"),
        ("POOL_TIMEOUT_S", "soon"),
        ("OPENAI_CHECK_EMBEDDING_CTX_LENGTH", "maybe"),
    ],
)
def test_a_value_that_does_not_parse_is_a_configuration_error_naming_the_variable(var, raw):
    with pytest.raises(ConfigurationError, match=var) as caught:
        Settings.from_env({var: raw})
    assert repr(raw) in str(caught.value)


def test_every_field_names_its_environment_variable_and_says_what_it_means():
    described = Settings.describe()
    assert len(described) == len(dataclasses.fields(Settings))
    assert {"DATABASE_URL", "HYBRID_RAG_HOME", "EMBEDDINGS", "OPENAI_API_KEY", "OPENAI_BASE_URL", "API_KEYS"} <= set(
        described
    )
    assert all(doc.strip() for doc in described.values())


def test_settings_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().max_k = 5  # type: ignore[misc]


def test_get_settings_reads_the_environment_once(monkeypatch):
    get_settings.cache_clear()
    try:
        monkeypatch.setenv("MAX_K", "7")
        first = get_settings()
        monkeypatch.setenv("MAX_K", "8")
        assert get_settings() is first and first.max_k == 7
        get_settings.cache_clear()
        assert get_settings().max_k == 8
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_the_filter_size_limit_is_documented_with_how_values_count_and_its_ceiling():
    from retriever.filters import HARD_MAX_VALUES

    doc = Settings.describe()["MAX_FILTER_VALUES"]
    assert "$in" in doc and str(HARD_MAX_VALUES) in doc
    assert Settings().max_filter_values <= HARD_MAX_VALUES


def test_query_batching_and_the_query_cache_are_on_by_default_and_read_from_the_environment():
    defaults = Settings()
    assert (defaults.query_batch_window_ms, defaults.query_batch_max, defaults.query_cache_size) == (0.0, 32, 1000)
    settings = Settings.from_env({"QUERY_BATCH_WINDOW_MS": "2.5", "QUERY_BATCH_MAX": "1", "QUERY_CACHE_SIZE": "0"})
    assert (settings.query_batch_window_ms, settings.query_batch_max, settings.query_cache_size) == (2.5, 1, 0)


@pytest.mark.parametrize(
    ("var", "raw"),
    [
        ("QUERY_BATCH_WINDOW_MS", "-1"),
        ("QUERY_BATCH_WINDOW_MS", "51"),
        ("QUERY_BATCH_MAX", "0"),
        ("QUERY_CACHE_SIZE", "-5"),
    ],
)
def test_query_batching_settings_out_of_range_are_a_configuration_error_naming_the_variable(var, raw):
    with pytest.raises(ConfigurationError, match=var):
        Settings.from_env({var: raw})
