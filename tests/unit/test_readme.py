"""The README states the code's defaults: every setting with its variable and default, the CLI synopses.

Specification: each `Settings` field's environment variable has a row in the README's
Configuration table whose default is the field's; the `search` and `ingest` synopses show
`SearchParams`' and `ChunkingConfig`'s defaults. Changing a default without the README fails here.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from ingest import ChunkingConfig
from retriever import SearchParams, Settings, VectorIndex

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def configuration_defaults() -> dict[str, str]:
    """Environment variable → the default its Configuration row states (one value per variable)."""
    documented: dict[str, str] = {}
    for line in _section("Configuration").splitlines():
        if not line.startswith("| `"):
            continue
        variables_cell, _meaning, default_cell = (cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:4])
        variables = re.findall(r"`([A-Z0-9_]+)`", variables_cell)
        defaults = [part.strip() for part in default_cell.split(", ")] if len(variables) > 1 else [default_cell]
        if len(defaults) != len(variables):
            defaults = [default_cell] * len(variables)
        documented.update(zip(variables, defaults, strict=True))
    return documented


def _shown(value: object) -> str | None:
    """How the table shows a default; None where it describes it in words (unset, a folder)."""
    if value is None or value == ():
        return None
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f"`{value}`"
    return str(value)


SETTINGS = [(f.metadata["env"], f.default) for f in fields(Settings)]


@pytest.mark.parametrize(("variable", "default"), SETTINGS, ids=[variable for variable, _ in SETTINGS])
def test_every_setting_is_in_the_configuration_table_with_its_default(variable, default):
    documented = configuration_defaults()
    assert variable in documented, f"{variable} is missing from the README's Configuration table"
    shown = _shown(default)
    if shown is None:  # described in words: unset, an embedded database, a folder
        assert documented[variable] in {"—"} or documented[variable].startswith(("unset", "`~/")), documented[variable]
    else:
        assert documented[variable] == shown


def test_the_search_synopsis_shows_the_search_defaults():
    synopsis = re.search(r"`hybrid-rag search QUERY(.*?)`", README, re.DOTALL).group(1)
    defaults = SearchParams()
    weights = ",".join(f"{weight:g}" for weight in defaults.weights)
    for option in (
        f"[-k {defaults.k}]",
        f"[--candidates {defaults.candidates}]",
        f"[--rrf-k {defaults.rrf_k}]",
        f"[--fusion {defaults.fusion}",
    ):
        assert option in synopsis
    assert f"[--weights {weights}]" in synopsis
    assert "[--probes N]" in synopsis


def test_the_ingest_synopsis_shows_the_chunking_and_index_defaults():
    synopsis = re.search(r"`hybrid-rag ingest PATH\.\.\.(.*?)`", README, re.DOTALL).group(1)
    defaults = ChunkingConfig()
    assert f"[--chunk-size {defaults.chunk_size}]" in synopsis
    assert f"[--chunk-overlap {defaults.chunk_overlap}]" in synopsis
    index = VectorIndex()
    for option in (
        f"[--index {index.kind}|ivfflat]",
        f"[--storage {index.storage}|halfvec]",
        f"[--hnsw-m {index.m}]",
        f"[--ef-construction {index.ef_construction}]",
        f"[--lists {index.lists}]",
    ):
        assert option in synopsis


def test_a_documented_example_score_is_one_the_defaults_can_give():
    # the top hit of both legs scores w_vector + w_text under either linear fusion (each leg's
    # best normalises to 1), w_vector/(rrf_k + 1) + w_text/(rrf_k + 1) under rrf
    defaults = SearchParams()
    top = sum(defaults.weights) / (defaults.rrf_k + 1 if defaults.fusion == "rrf" else 1)
    shown = re.search(r'"score": ([0-9.]+), "vector_rank": 1, "text_rank": 1', README)
    assert shown is not None and float(shown.group(1)) == pytest.approx(top, abs=5e-4)
