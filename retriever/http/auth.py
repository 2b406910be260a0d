"""Bearer API keys (API_KEYS), compared in constant time, optionally scoped to collections.

`API_KEYS=k1,k2@docs|faq`: `k1` may use every collection, `k2` only `docs` and `faq`.
A scoped key gets the same 404 for a collection outside its scope as for one that does
not exist, so it cannot learn which other collections there are. Keys are never logged.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers import BaseRouteHandler

from retriever.errors import CollectionNotFound, ConfigurationError, InvalidName
from retriever.store.tables import validate_name

__all__ = ["ApiKeys", "Grant", "require_key"]


@dataclass(frozen=True, slots=True)
class Grant:
    """What the caller's key may touch: every collection (`collections is None`) or a few."""

    collections: frozenset[str] | None = None

    def allows(self, collection: str) -> bool:
        return self.collections is None or collection in self.collections


OPEN = Grant()


@dataclass(frozen=True, slots=True)
class _Key:
    token: bytes
    grant: Grant

    def __repr__(self) -> str:  # never show a key, even in a debugger or a traceback
        return f"_Key(<hidden>, {self.grant})"


class ApiKeys:
    """The configured keys; with none configured every request is let in (loopback-only servers)."""

    def __init__(self, entries: tuple[str, ...]) -> None:
        self._keys = tuple(_parse(position, entry) for position, entry in enumerate(entries))

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def grant_for(self, authorization: str | None) -> Grant | None:
        """The grant of the key in an `Authorization: Bearer …` header, or None when it matches no key."""
        if not self._keys:
            return OPEN
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        try:  # headers arrive decoded as latin-1: this recovers the bytes the client sent
            presented = token.strip().encode("latin-1")
        except UnicodeEncodeError:
            return None
        found: Grant | None = None
        for key in self._keys:  # no early exit: the time taken does not depend on which key matched
            if hmac.compare_digest(key.token, presented):
                found = key.grant
        return found


def _parse(position: int, entry: str) -> _Key:
    token, sep, scope = entry.strip().rpartition("@") if "@" in entry else (entry.strip(), "", "")
    if not token:
        raise ConfigurationError(f"API_KEYS entry {position + 1} has no key before '@'")
    if not sep:
        return _Key(token.encode(), OPEN)
    names = [name.strip() for name in scope.split("|") if name.strip()]
    if not names:
        raise ConfigurationError(f"API_KEYS entry {position + 1} ends in '@' but names no collection")
    try:
        collections = frozenset(validate_name(name) for name in names)
    except InvalidName as exc:
        raise ConfigurationError(f"API_KEYS entry {position + 1}: {exc}") from None
    return _Key(token.encode(), Grant(collections))


def require_key(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Guard of the /v1 routes: a valid key (401 otherwise) whose scope covers the path's collection (404)."""
    keys: ApiKeys = connection.app.state.api_keys
    grant = keys.grant_for(connection.headers.get("authorization"))
    if grant is None:
        raise NotAuthorizedException("missing or invalid API key")
    connection.state.grant = grant
    name = connection.path_params.get("name")
    if isinstance(name, str) and not grant.allows(name):
        raise CollectionNotFound(f"no collection named {name!r}")
