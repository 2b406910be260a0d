"""An in-memory BM25 baseline, to compare the database's text leg against.

``rank_bm25`` belongs to the optional 'eval' extra: it is imported when a baseline is built,
not when this module is imported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from retriever import ConfigurationError

if TYPE_CHECKING:
    from rank_bm25 import BM25Okapi

# The English stop words of Lucene's EnglishAnalyzer, which Elasticsearch uses
# as `_english_` and which BEIR's BM25 baseline therefore removed.
# fmt: off
STOPWORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in",
    "into", "is", "it", "no", "not", "of", "on", "or", "such", "that", "the",
    "their", "then", "there", "these", "they", "this", "to", "was", "will", "with",
))
# fmt: on

_TOKEN = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    """Lowercase ``\\w+`` tokens of ``text`` with ``STOPWORDS`` removed, no stemming."""
    return [token for token in _TOKEN.findall(text.lower()) if token not in STOPWORDS]


def _bm25okapi() -> type[BM25Okapi]:
    """``rank_bm25.BM25Okapi``, or a ``ConfigurationError`` naming the extra that provides it."""
    try:
        from rank_bm25 import BM25Okapi
    except ImportError as exc:
        raise ConfigurationError(
            "hybrid-rag eval needs the 'eval' extra: pip install 'hybrid-rag[eval]' (missing: rank_bm25)"
        ) from exc
    return BM25Okapi


class Bm25Baseline:
    """BM25 (``rank_bm25.BM25Okapi``) over ``title + " " + text`` of BEIR corpus records.

    Tokenizer: see ``tokenize`` — lowercase ``\\w+`` tokens, Lucene's 33 English
    stop words removed, no stemming (none is installed, and the score below
    already meets BEIR's). ``k1=1.2, b=0.75`` are Lucene's defaults, the ones
    BEIR's Elasticsearch baseline ran with. On SciFact test this gives
    nDCG@10 0.668 against BEIR's published 0.665.
    """

    def __init__(self, records: Iterable[Mapping[str, Any]], k1: float = 1.2, b: float = 0.75) -> None:
        bm25okapi = _bm25okapi()  # before reading the corpus: a missing extra fails fast
        self.doc_ids: list[str] = []
        tokens: list[list[str]] = []
        for record in records:
            self.doc_ids.append(str(record["_id"]))
            tokens.append(tokenize(f"{record.get('title') or ''} {record.get('text') or ''}"))
        if not tokens:
            raise ValueError("cannot build a BM25 index over an empty corpus")
        self._bm25 = bm25okapi(tokens, k1=k1, b=b)

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """Return up to ``k`` (document id, score) pairs, best first; documents matching no term are left out."""
        terms = tokenize(query)
        if not terms or k < 1:
            return []
        scores = self._bm25.get_scores(terms)
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        # Best score first; equal scores keep corpus order.
        top = top[np.lexsort((top, -scores[top]))]
        return [(self.doc_ids[i], float(scores[i])) for i in top if scores[i] > 0]
