"""`import eval` is cheap: the optional 'eval' extra and the embedding model load only when used.

Each check runs in a fresh interpreter, since this test session has long since imported them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("matplotlib", "ir_measures", "rank_bm25", "torch", "sentence_transformers")

# Makes `library` (and its submodules) unimportable in the child, as if the extra were not installed.
BLOCKER = """
import sys

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name == {library!r} or name.startswith({library!r} + "."):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Blocker())
"""

VALID_RESULTS = {
    "dataset": "tiny",
    "split": "test",
    "queries": 1,
    "modes": {
        "hybrid": {
            "ndcg@10": 1.0,
            "recall@10": 1.0,
            "recall@100": 1.0,
            "mrr@10": 1.0,
            "latency_ms": {"p50": 1.0, "p95": 2.0},
        }
    },
}

# For each library of the extra, a call into `eval` that needs it.
NEEDS = {
    "ir_measures": 'eval.score_run({"q1": {"d1": 1}}, {"q1": {"d1": 1.0}})',
    "matplotlib": f"eval.write_chart(Path(tempfile.mkdtemp()), {VALID_RESULTS!r})",
    "rank_bm25": 'eval.Bm25Baseline([{"_id": "d1", "title": "t", "text": "stargazing for beginners"}])',
}


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter from the repository root; return its stdout, fail on any error."""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"the child exited with {done.returncode}:\n{done.stderr}"
    return done.stdout


def test_importing_eval_loads_neither_the_eval_extra_nor_the_embedding_model() -> None:
    code = f"import json, sys\nimport eval\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"

    loaded = json.loads(run_python(code))

    assert loaded == []


def test_every_public_name_is_importable_without_loading_the_eval_extra() -> None:
    code = textwrap.dedent(
        f"""
        import json, sys
        import eval
        for name in eval.__all__:
            getattr(eval, name)
        print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))
        """
    )

    assert json.loads(run_python(code)) == []


@pytest.mark.parametrize("library", sorted(NEEDS))
def test_a_function_that_needs_a_missing_library_names_the_eval_extra(library: str) -> None:
    code = BLOCKER.format(library=library) + textwrap.dedent(
        f"""
        import tempfile
        from pathlib import Path

        import eval
        from retriever.errors import ConfigurationError

        try:
            {NEEDS[library]}
        except ConfigurationError as error:
            print(error)
        else:
            print("no error")
        """
    )

    message = run_python(code).strip()

    assert "pip install 'hybrid-rag[eval]'" in message
    assert f"(missing: {library})" in message


@pytest.mark.parametrize("library", sorted(NEEDS))
def test_a_function_that_needs_a_library_of_the_extra_imports_it_when_it_runs(library: str) -> None:
    code = textwrap.dedent(
        f"""
        import sys, tempfile
        from pathlib import Path

        import eval

        before = {library!r} in sys.modules
        {NEEDS[library]}
        print(before, {library!r} in sys.modules)
        """
    )

    assert run_python(code).split() == ["False", "True"]
