"""Topic labels and k-means, without a database.

Specification: a label joins a topic's first three terms, lengthened term by term until no
other label reads the same, and numbered when its terms run out; k-means groups unit
vectors by direction and returns unit-length centroids; k outside 2..n is a user mistake.
"""

from __future__ import annotations

import numpy as np
import pytest

from retriever.errors import InputError
from retriever.topics import cluster, label_topics


def test_a_label_is_the_first_three_terms():
    assert label_topics({0: ["star", "galaxi", "orbit", "comet"], 1: ["bean", "roast"]}, 2) == {
        0: "star / galaxi / orbit",
        1: "bean / roast",
    }


def test_labels_that_would_read_the_same_are_lengthened_until_distinct():
    terms = {0: ["cell", "gene", "protein", "mice"], 1: ["cell", "gene", "protein", "tumour"]}

    assert label_topics(terms, 2) == {0: "cell / gene / protein", 1: "cell / gene / protein / tumour"}


def test_a_topic_without_distinct_terms_is_numbered():
    labels = label_topics({0: ["cell"], 1: ["cell"]}, 3)

    assert labels == {0: "cell", 1: "cell #1", 2: "topic #2"}
    assert len(set(labels.values())) == 3


def test_kmeans_groups_vectors_by_direction_with_unit_centroids():
    rng = np.random.default_rng(7)
    directions = np.eye(4, dtype=np.float32)[:3]
    vectors = np.concatenate([d * rng.uniform(0.5, 3, (20, 1)) + rng.normal(0, 0.02, (20, 4)) for d in directions])

    topics, centroids = cluster(vectors.astype(np.float32), 3)

    assert sorted(np.bincount(topics).tolist()) == [20, 20, 20]
    assert all(len(set(topics[i * 20 : (i + 1) * 20].tolist())) == 1 for i in range(3))
    assert np.allclose(np.linalg.norm(centroids, axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("k", [1, 11])
def test_k_outside_two_to_the_number_of_chunks_is_refused(k):
    with pytest.raises(InputError, match="between 2 and the collection's 10 chunks"):
        cluster(np.ones((10, 4), dtype=np.float32), k)
