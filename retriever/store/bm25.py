"""BM25's constants and formulas, defined once: in Python and as the SQL the statements embed.

BM25 (Robertson & Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond",
2009), over the lexemes `to_tsvector` produces:

    score(d, q) = Σ_{t ∈ q} w(t) · idf(t) · tf·(k1 + 1) / (tf + k1·(1 − b + b·len(d)/avgdl))
    idf(t)      = ln(1 + (N − df(t) + 0.5) / (df(t) + 0.5))
    w(t)        = (k3 + 1)·qtf(t) / (k3 + qtf(t))

tf: occurrences of t in d; len(d): d's length in lexemes; avgdl: the collection's mean
length; N: chunks in the collection; df(t): chunks that hold t; qtf(t): occurrences of t
in the query (its lexeme's positions in `to_tsvector(query)`). The factor after idf is the
*term weight* (a posting's impact); the posting blocks are ordered by it.
The writer (impacts), the query's text leg and "more like this" (tf·idf) all use these.

The query-term factor w is Robertson's (same reference, and the Okapi BM25 of TREC): 1
for a term the query holds once, growing with each repetition, but less than linearly.
Lucene and rank-bm25 weigh plain qtf (k3 → ∞: one clause or token per occurrence, their
scores summed). Measured on the development collections (README "Quality"), k3 = 8
gave the text leg the best mean nDCG@10 of plain qtf, k3 = 8 and k3 = 2, and no worse
a one than plain qtf anywhere: counting repetitions gains much on paragraph-long queries
(LISA's) and loses a little on short ones that repeat a word (MEDLINE's); k3 = 8 keeps
the gain and halves the loss.
"Like this document" terms count once.
"""

from __future__ import annotations

import math

from psycopg import sql

__all__ = [
    "K1",
    "K3",
    "B",
    "bm25",
    "idf",
    "idf_sql",
    "query_weight",
    "query_weight_sql",
    "term_weight",
    "term_weight_sql",
]

# k1 and b: measured against Anserini's BEIR setting (0.9, 0.4) and the mixed pairs on the
# development collections (README "Quality"), 1.2 and 0.75 gave the best mean nDCG@10, for
# the text leg and the hybrid. The posting blocks' impacts are written with them: a change
# needs every collection's postings rewritten, or the bounded read's order and bounds drift.
K1 = 1.2  # term-frequency saturation
B = 0.75  # length normalisation
K3 = 8.0  # query-term-frequency saturation


def idf(n: float, df: float) -> float:
    """Inverse document frequency: ln(1 + (N − df + 0.5) / (df + 0.5)), always > 0."""
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


def query_weight(qtf: float) -> float:
    """(k3 + 1)·qtf / (k3 + qtf): the weight of a term the query holds `qtf` (≥ 1) times; exactly 1 for once."""
    return (K3 + 1) * qtf / (K3 + qtf)


def term_weight(tf: float, length: float, avgdl: float) -> float:
    """tf·(k1 + 1) / (tf + k1·(1 − b + b·len/avgdl)): one posting's impact, without idf."""
    return tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / avgdl))


def bm25(idf_value: float, tf: float, length: float, avgdl: float, *, qtf: float = 1) -> float:
    """One query term's BM25 contribution, (idf · query weight) · term weight, in the order the SQL computes it."""
    weight = idf_value * query_weight(qtf)
    return weight * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / avgdl))


def _expression(text: str) -> sql.Composable:
    # column expressions written by this package, never user input
    return sql.SQL(text)


def idf_sql(n: str, df: str) -> sql.Composable:
    """`idf` as SQL over two column expressions (float8)."""
    return sql.SQL("ln(1 + ({n} - {df} + 0.5) / ({df} + 0.5))").format(n=_expression(n), df=_expression(df))


def query_weight_sql(qtf: str) -> sql.Composable:
    """`query_weight` as SQL over a column expression (an integer count), float8 as in Python."""
    return sql.SQL("({k3} + 1) * {qtf} / ({k3} + {qtf})").format(
        k3=sql.SQL("{}::float8").format(sql.Literal(K3)), qtf=_expression(qtf)
    )


def term_weight_sql(tf: str, length: str, avgdl: str, *, idf: str | None = None) -> sql.Composable:
    """`term_weight` as SQL over column expressions; with `idf`, the whole BM25 contribution.

    k1 and b are float8 literals, so the arithmetic is float8 throughout, as in Python.
    """
    weight = sql.SQL("{tf} * ({k1} + 1) / ({tf} + {k1} * (1 - {b} + {b} * {length} / {avgdl}))").format(
        tf=_expression(tf),
        length=_expression(length),
        avgdl=_expression(avgdl),
        k1=sql.SQL("{}::float8").format(sql.Literal(K1)),
        b=sql.SQL("{}::float8").format(sql.Literal(B)),
    )
    return weight if idf is None else sql.SQL("{} * ").format(_expression(idf)) + weight
