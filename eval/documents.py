"""Collapse a ranked list of chunk hits into a ranked list of source documents."""

from __future__ import annotations

import math
from collections.abc import Iterable


def chunks_to_documents(hits: Iterable[tuple[str, float]], limit: int) -> dict[str, float]:
    """Rank the first ``limit`` distinct documents of chunk ``hits`` given in rank order.

    A document takes the place and score of its best (first-ranked) chunk. Metric
    libraries re-sort a run by score and break ties by document id, so when a
    score does not fall strictly below the previous document's (ties, or a
    retriever whose scores are not monotone) it is lowered to the next float
    below that one. The returned scores therefore strictly decrease in the
    retriever's order, and the ranking that gets scored is exactly that order.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    documents: dict[str, float] = {}
    previous = math.inf
    for document_id, score in hits:
        if document_id in documents:
            continue
        score = float(score)
        if not score < previous:
            score = math.nextafter(previous, -math.inf)
        documents[document_id] = previous = score
        if len(documents) == limit:
            break
    return documents
