"""API keys, their scopes, and the refusal to serve a non-loopback address without them."""

from __future__ import annotations

import contextlib
import logging

import pytest
from click.testing import CliRunner

from retriever.cli.serve import is_loopback, serve_command
from retriever.errors import ConfigurationError
from retriever.http.auth import ApiKeys


def test_no_keys_configured_lets_every_request_in():
    keys = ApiKeys(())
    assert not keys.enabled
    assert keys.grant_for(None).allows("anything")


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Bearer wrong", "Basic secret-one", "secret-one", "Bearer secret-on"],
)
def test_a_missing_or_wrong_key_gets_no_grant(header):
    assert ApiKeys(("secret-one", "secret-two@docs")).grant_for(header) is None


def test_bearer_scheme_is_case_insensitive_and_every_key_works():
    keys = ApiKeys(("secret-one", "secret-two"))
    assert keys.grant_for("bearer secret-one") is not None
    assert keys.grant_for("Bearer secret-two") is not None


def test_a_scoped_key_allows_only_its_collections():
    keys = ApiKeys(("open-key", "scoped-key@docs|faq"))
    scoped = keys.grant_for("Bearer scoped-key")
    assert scoped is not None and scoped.collections == {"docs", "faq"}
    assert scoped.allows("docs") and scoped.allows("faq") and not scoped.allows("other")
    assert keys.grant_for("Bearer open-key").allows("other")


@pytest.mark.parametrize("entry", ["@docs", "key@", "key@|", "key@Not-A-Name"])
def test_malformed_api_keys_are_a_configuration_error(entry):
    with pytest.raises(ConfigurationError):
        ApiKeys((entry,))


def test_keys_never_appear_in_reprs_or_errors(caplog):
    caplog.set_level(logging.DEBUG)
    keys = ApiKeys(("top-secret-value@docs",))
    assert "top-secret-value" not in repr(keys._keys)
    with pytest.raises(ConfigurationError) as error:
        ApiKeys(("top-secret-value@Bad",))
    assert "top-secret-value" not in str(error.value)
    keys.grant_for("Bearer top-secret-value")
    assert "top-secret-value" not in caplog.text


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_addresses(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com", "10.0.0.1"])
def test_non_loopback_addresses(host):
    assert not is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10"])
def test_serve_refuses_a_non_loopback_host_without_api_keys(monkeypatch, host):
    monkeypatch.delenv("API_KEYS", raising=False)
    started = []
    monkeypatch.setattr("uvicorn.run", lambda *args, **kwargs: started.append(kwargs))
    from retriever.settings import get_settings

    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(serve_command, ["--host", host])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "refusing to listen on" in result.output and "API_KEYS" in result.output
    assert "Traceback" not in result.output
    assert not started


def test_serve_starts_uvicorn_on_loopback_or_with_keys(monkeypatch):
    started = []
    monkeypatch.setattr("uvicorn.run", lambda *args, **kwargs: started.append((args, kwargs)))
    # no database in unit tests: the check that one answers is tests/integration/test_cli.py's
    monkeypatch.setattr("retriever.cli.serve.open_primary", lambda settings: contextlib.nullcontext())
    from retriever.settings import get_settings

    for env, host in (({}, "127.0.0.1"), ({"API_KEYS": "k1,k2@docs"}, "0.0.0.0")):
        monkeypatch.delenv("API_KEYS", raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        result = CliRunner().invoke(serve_command, ["--host", host, "--port", "8123", "--workers", "2"])
        assert result.exit_code == 0, result.output
    get_settings.cache_clear()
    assert [
        (args, kwargs["host"], kwargs["port"], kwargs["workers"], kwargs["factory"]) for args, kwargs in started
    ] == [
        (("retriever.http:create_app",), "127.0.0.1", 8123, 2, True),
        (("retriever.http:create_app",), "0.0.0.0", 8123, 2, True),
    ]


def test_serve_rejects_malformed_api_keys_with_exit_2(monkeypatch):
    monkeypatch.setenv("API_KEYS", "key@Bad-Name")
    monkeypatch.setattr("uvicorn.run", lambda *args, **kwargs: pytest.fail("must not start"))
    from retriever.settings import get_settings

    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(serve_command, [])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2 and "API_KEYS" in result.output
