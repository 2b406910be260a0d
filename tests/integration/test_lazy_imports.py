"""Cheap paths stay cheap: importing the package, `--help`, listing collections and a text search
load neither the embedding model's libraries nor matplotlib, and a hybrid search on the default local
backend (ONNX Runtime) embeds its query without torch, sentence-transformers or transformers.

Each check runs in a fresh interpreter (this test session has long since imported everything)
and reports which heavy libraries ended up in `sys.modules`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from ingest import ChunkingConfig, SourceDocument
from retriever import Engine
from retriever.embeddings import EmbeddingModel
from retriever.settings import Settings

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "sentence_transformers", "matplotlib", "transformers")
MODEL_LIBRARIES = ("torch", "sentence_transformers", "transformers")

# Runs ARGS through the `hybrid-rag` CLI with its output captured, then prints one JSON line:
# the command's output and the heavy modules loaded.
RUN_CLI = """
import contextlib, io, json, sys
from hybrid_rag.cli import main

output = io.StringIO()
with contextlib.redirect_stdout(output):
    main({args!r}, standalone_mode=False)
print(json.dumps({{"output": output.getvalue(), "heavy": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def run_python(code: str, **env: str) -> dict:
    """Run ``code`` in a fresh interpreter; fail on any error; return the JSON its last line prints."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"the child exited with {done.returncode}:\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_cli(args: list[str], **env: str) -> dict:
    return run_python(RUN_CLI.format(args=args, heavy=HEAVY), **env)


def database_env(settings: Settings) -> dict[str, str]:
    """The session's database for the child: the same HYBRID_RAG_HOME (and DATABASE_URL when set)."""
    env = {"HYBRID_RAG_HOME": str(settings.home or os.environ["HYBRID_RAG_HOME"])}
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    return env


def test_importing_retriever_loads_no_model_or_plotting_library() -> None:
    code = f"""
        import json, sys
        import retriever
        print(json.dumps({{"heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
    """

    assert run_python(code)["heavy"] == []


def test_help_loads_no_model_or_plotting_library() -> None:
    done = run_cli(["--help"])

    assert "collections" in done["output"]
    assert done["heavy"] == []


def test_listing_collections_loads_no_model_or_plotting_library(settings: Settings) -> None:
    done = run_cli(["collections"], **database_env(settings))

    assert done["output"].strip()
    assert done["heavy"] == []


def test_a_text_search_loads_no_model(settings: Settings, collection_name: str, fake_model: EmbeddingModel) -> None:
    document = SourceDocument("d", "some text about coffee", "Title", "t", {})
    Engine(settings, model=fake_model).ingest(collection_name, [document], ChunkingConfig())

    done = run_cli(["search", "coffee", "-c", collection_name, "--mode", "text", "--json"], **database_env(settings))

    hits = json.loads(done["output"])["results"]
    assert [hit["document_id"] for hit in hits] == ["d"]
    assert [m for m in done["heavy"] if m in MODEL_LIBRARIES] == []


def test_a_hybrid_search_on_the_default_local_model_imports_no_torch(
    settings: Settings, collection_name: str, local_model: EmbeddingModel
) -> None:
    document = SourceDocument("d", "fresh coffee beans keep their aroma for about a month", "Beans", "t", {})
    Engine(settings, model=local_model).ingest(collection_name, [document], ChunkingConfig())

    done = run_cli(
        ["search", "how long do beans stay fresh", "-c", collection_name, "--json"],
        **database_env(settings),
        EMBEDDINGS="local",  # the default backend, whatever the caller's environment says
    )

    hits = json.loads(done["output"])["results"]
    assert [(hit["document_id"], hit["vector_rank"]) for hit in hits] == [("d", 1)]  # the query was embedded
    assert [m for m in done["heavy"] if m in MODEL_LIBRARIES] == []
