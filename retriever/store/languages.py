"""A collection's language: the text search configuration its `tsv` column and its queries use.

A language is any text search configuration of the server (`\\dF` in psql, or
`SELECT cfgname FROM pg_ts_config`): `english`, `german`, `simple`, or one an extension
or an operator created (`schema.name` for one outside the search path).

Accent-insensitive matching uses a configuration derived from the language,
`hybrid_rag.<language>_unaccent`: a copy whose every token type goes through the
`unaccent` dictionary (a filtering dictionary: it passes the unaccented word on) before
the language's own dictionaries, so `café` and `cafe` become one lexeme. The chunk
table's generated `tsv` and the query's `to_tsvector` both name the collection's
configuration, so ingest and query always agree. Each derived configuration is made
once, by whichever creator comes first, under an advisory lock.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from retriever.errors import InputError
from retriever.store.tables import SCHEMA

__all__ = ["DEFAULT_LANGUAGE", "TextSearch", "find_language", "text_search"]

DEFAULT_LANGUAGE = "english"
_MAX_IDENTIFIER = 63  # PostgreSQL's NAMEDATALEN - 1, in bytes

# Configurations this schema derives are not languages of their own.
_FIND = """
SELECT c.oid::regconfig::text, n.nspname, c.cfgname
FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace
WHERE n.nspname <> %(schema)s
  AND ((c.cfgname::text IN (%(name)s::text, lower(%(name)s::text)) AND pg_ts_config_is_visible(c.oid))
       OR n.nspname || '.' || c.cfgname IN (%(name)s::text, lower(%(name)s::text)))
ORDER BY c.cfgname::text = %(name)s::text DESC
LIMIT 1
"""
_AVAILABLE = """
SELECT string_agg(c.oid::regconfig::text, ', ' ORDER BY c.oid::regconfig::text)
FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace
WHERE n.nspname <> %(schema)s
"""
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('hybrid_rag.text_search'))"
_EXISTS = """
SELECT count(*) FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace
WHERE n.nspname = %(schema)s AND c.cfgname = %(name)s
"""
_UNACCENT_SCHEMA = """
SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'unaccent'
"""
_UNACCENT_AVAILABLE = "SELECT count(*) FROM pg_available_extensions WHERE name = 'unaccent'"
# The base configuration's mappings: token type → its dictionaries, in the order they are tried.
_MAPPINGS = """
SELECT t.alias, dn.nspname, d.dictname
FROM pg_ts_config c
JOIN pg_ts_config_map m ON m.mapcfg = c.oid
JOIN ts_token_type(c.cfgparser) t ON t.tokid = m.maptokentype
JOIN pg_ts_dict d ON d.oid = m.mapdict
JOIN pg_namespace dn ON dn.oid = d.dictnamespace
JOIN pg_namespace n ON n.oid = c.cfgnamespace
WHERE n.nspname = %(schema)s AND c.cfgname = %(name)s
ORDER BY t.alias, m.mapseqno
"""


@dataclass(frozen=True, slots=True)
class Language:
    """A text search configuration of the server: its name as `regconfig` prints it, its schema and bare name."""

    name: str
    schema: str
    config: str


@dataclass(frozen=True, slots=True)
class TextSearch:
    """What a collection records: its `language`, whether matching ignores accents, and the configuration used.

    `config` is the language itself, or (accent-insensitive) its derived configuration,
    schema-qualified (`hybrid_rag.german_unaccent`).
    """

    language: str
    accent_insensitive: bool
    config: str


def find_language(cur: psycopg.Cursor, language: str) -> Language:
    """The server's text search configuration named `language` (case-insensitive, optionally `schema.name`).

    Raises `InputError` naming the language and listing the server's configurations.
    """
    name = language.strip() if isinstance(language, str) else ""
    found = cur.execute(_FIND, {"schema": SCHEMA, "name": name}).fetchone() if name else None
    if found is None:
        available = cur.execute(_AVAILABLE, {"schema": SCHEMA}).fetchone()[0]  # type: ignore[index]
        raise InputError(
            f"unknown language {language!r}: it must name one of this server's text search configurations ({available})"
        )
    return Language(*found)


def text_search(cur: psycopg.Cursor, language: str, *, accent_insensitive: bool = False) -> TextSearch:
    """The configuration a new collection in `language` uses, deriving the accent-insensitive one if needed.

    Run it inside the transaction that creates the collection. Raises `InputError` for an
    unknown language, or for accent-insensitivity on a server without the unaccent extension.
    """
    found = find_language(cur, language)
    if not accent_insensitive:
        return TextSearch(found.name, False, found.name)
    derived = f"{found.config}_unaccent" if found.schema == "pg_catalog" else f"{found.schema}_{found.config}_unaccent"
    if len(derived.encode()) > _MAX_IDENTIFIER:
        raise InputError(f"language {found.name!r}: its name is too long for an accent-insensitive configuration")
    cur.execute(_LOCK)  # one creator at a time; the others then find it made
    if cur.execute(_EXISTS, {"schema": SCHEMA, "name": derived}).fetchone()[0] == 0:  # type: ignore[index]
        _derive(cur, found, derived, _unaccent_schema(cur))
    return TextSearch(found.name, True, sql.Identifier(SCHEMA, derived).as_string(cur))


def _unaccent_schema(cur: psycopg.Cursor) -> str:
    """The schema of the unaccent extension, installed into ours if the server has it but no database uses it yet."""
    installed = cur.execute(_UNACCENT_SCHEMA).fetchone()
    if installed is not None:
        return installed[0]
    if cur.execute(_UNACCENT_AVAILABLE).fetchone()[0] == 0:  # type: ignore[index]
        raise InputError(
            "accent-insensitive matching needs PostgreSQL's unaccent extension, which this server lacks "
            "(the embedded server has none): point DATABASE_URL at a server with it (contrib modules), "
            "or create the collection without accent-insensitivity"
        )
    cur.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS unaccent SCHEMA {}").format(sql.Identifier(SCHEMA)))
    return SCHEMA


def _derive(cur: psycopg.Cursor, base: Language, derived: str, unaccent_schema: str) -> None:
    """Create `hybrid_rag.<derived>`: a copy of `base` whose every mapping tries `unaccent` first."""
    target = sql.Identifier(SCHEMA, derived)
    cur.execute(
        sql.SQL("CREATE TEXT SEARCH CONFIGURATION {} (COPY = {})").format(
            target, sql.Identifier(base.schema, base.config)
        )
    )
    mappings: dict[str, list[sql.Identifier]] = {}
    for alias, schema, dictionary in cur.execute(_MAPPINGS, {"schema": SCHEMA, "name": derived}).fetchall():
        mappings.setdefault(alias, []).append(sql.Identifier(schema, dictionary))
    unaccent = sql.Identifier(unaccent_schema, "unaccent")
    for alias, dictionaries in mappings.items():
        cur.execute(
            sql.SQL("ALTER TEXT SEARCH CONFIGURATION {} ALTER MAPPING FOR {} WITH {}").format(
                target, sql.Identifier(alias), sql.SQL(", ").join([unaccent, *dictionaries])
            )
        )
