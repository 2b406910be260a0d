"""The README's Python runs: every ```python block, in order, in one namespace, against the session's database.

What the blocks may rely on, and how the test provides it:

- the `demo` collection that `make demo` ingests: `samples/corpus`, ingested first with the
  packaged model, as `make demo` does (the README's `Engine()` and `HybridRetriever(...)` take
  their model from the environment, so a collection of another model would be refused);
- `DATABASE_URL`: set to the session's embedded server, read by the README's `PGVectorStore`
  block (and, through the settings, by everything else: the same server);
- the working directory: the repository root, to which the README's paths are relative;
- the chat model, the substitution hook: each top-level statement of a block that assigns `llm`
  (the README's `llm = ChatOpenAI(...)  # any LangChain chat model`) has its value replaced by
  `CHAT_MODEL`, a `FakeListChatModel` the test puts in the namespace, so no key or network is
  needed. A chain must end in that model: the test checks it was called with a prompt that
  holds the retrieved context.

Collections the blocks create are dropped afterwards, `demo` included.
"""

from __future__ import annotations

import ast
import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import BaseMessage
from langchain_postgres import PGEngine

from retriever import Engine, HybridRetriever
from retriever.connections import open_primary
from retriever.settings import get_settings
from retriever.store.collections import drop_collection, list_collections
from retriever.store.database import primary_dsn

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
ANSWER = "Grind finer and brew hotter or longer: sourness is under-extraction."
SUBSTITUTE = "CHAT_MODEL"  # the name the test binds; each top-level `llm = ...` is rebound to it


def python_blocks(markdown: str) -> list[str]:
    """The code of every ```python fenced block, in document order."""
    return re.findall(r"^```python\n(.*?)^```$", markdown, flags=re.MULTILINE | re.DOTALL)


def with_chat_model_substituted(code: str, filename: str) -> tuple[Any, int]:
    """The block compiled with each top-level `llm = <anything>` made `llm = CHAT_MODEL`, and how many there were."""
    module = ast.parse(code, filename)
    replaced = 0
    for statement in module.body:
        if isinstance(statement, ast.Assign) and [ast.unparse(t) for t in statement.targets] == ["llm"]:
            statement.value = ast.copy_location(ast.Name(SUBSTITUTE, ast.Load()), statement.value)
            replaced += 1
    return compile(ast.fix_missing_locations(module), filename, "exec"), replaced


class PromptRecorder(BaseCallbackHandler):
    """Keeps the messages each chat model call received."""

    def __init__(self) -> None:
        self.prompts: list[list[BaseMessage]] = []

    def on_chat_model_start(self, serialized: Any, messages: list[list[BaseMessage]], **kwargs: Any) -> None:
        self.prompts.extend(messages)


@pytest.fixture
def demo_database(settings, local_model, monkeypatch):
    """`demo` as `make demo` leaves it, DATABASE_URL pointing at it, the repository as working directory."""
    with open_primary(settings) as conn:
        before = {c.name for c in list_collections(conn)}
        if "demo" in before:  # another test's `demo`, perhaps of another model
            drop_collection(conn, "demo")
            before.discard("demo")
    Engine(settings, model=local_model).ingest_paths("demo", [REPO / "samples" / "corpus"])
    monkeypatch.setenv("DATABASE_URL", primary_dsn(settings))
    monkeypatch.chdir(REPO)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
    with open_primary(settings) as conn:
        for collection in list_collections(conn):
            if collection.name not in before:
                drop_collection(conn, collection.name)


def test_readme_python_blocks_run_in_order_with_a_substituted_chat_model(demo_database):
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert blocks, "the README has no ```python block"
    recorder = PromptRecorder()
    namespace: dict[str, Any] = {
        "__name__": "readme",
        SUBSTITUTE: FakeListChatModel(responses=[ANSWER], callbacks=[recorder]),
    }
    substituted = 0
    try:
        for number, code in enumerate(blocks, 1):
            compiled, replaced = with_chat_model_substituted(code, f"README.md python block {number}")
            substituted += replaced
            exec(compiled, namespace)  # the README's own code, the chat model aside
    finally:  # the connection pools the blocks opened
        for value in namespace.values():
            if isinstance(value, PGEngine):
                asyncio.run(value.close())
            elif isinstance(value, HybridRetriever):
                value.close()

    assert substituted >= 1, "no block assigns `llm`: the README's chain has no chat model to substitute"
    assert recorder.prompts, "no block's chain called the chat model"
    # the RAG chain reached the model with retrieved chunks as its context and the question beside them
    prompt = "\n".join(str(message.content) for message in recorder.prompts[0])
    assert "sour-or-bitter-coffee.md" in prompt  # samples/corpus's page on sour coffee was retrieved
    assert "sour" in str(recorder.prompts[0][-1].content)  # the question, as the last (human) message
    assert ANSWER in {value for value in namespace.values() if isinstance(value, str)}


def test_python_blocks_are_found_whole_and_in_order():
    markdown = "text\n```python\na = 1\n\nb = 2\n```\n```sh\nls\n```\n```python\nc = a + b\n```\n"
    assert python_blocks(markdown) == ["a = 1\n\nb = 2\n", "c = a + b\n"]


def test_only_top_level_llm_assignments_are_substituted():
    code = "llm = object()\nx = 1\ndef f():\n    llm = 2\n    return llm\n"
    compiled, replaced = with_chat_model_substituted(code, "example")
    namespace: dict[str, Any] = {SUBSTITUTE: "the fake"}
    exec(compiled, namespace)
    assert replaced == 1 and namespace["llm"] == "the fake" and namespace["f"]() == 2
