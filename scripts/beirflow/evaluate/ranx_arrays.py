"""ranx's numba containers built and read inside numba code that numba caches on disk.

Building a ``numba.typed`` Dict or List from Python, or reading one from Python, runs numba functions
that are compiled afresh in every process and never cached: building runs with ``ranx.Run(dict)`` and
reading the fused one with ``Run.to_dict()`` cost a fusion job on the sample 3.6 of its 9.1
CPU-seconds. Here the same containers are built from NumPy columns, and read back into columns, by
functions compiled once per machine (``cache=True``), calling ranx's own code where ranx builds them.
(``Run()`` itself still makes an empty Dict from Python, about 2 s once per process, inside ranx's
normalisation and fusion functions.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit
from numba.typed import List
from ranx.data_structures.common import create_and_sort

# Keys are fixed-width decimal numbers, so that numba compiles one signature (``<U12``) for every dataset.
KEY_WIDTH = 12


def keys(count: int) -> np.ndarray:
    """The keys ``0 .. count-1`` as fixed-width decimal text, in numeric (and text) order."""
    if count >= 10**KEY_WIDTH:
        raise ValueError(f"{count} keys: more than {KEY_WIDTH} decimal digits can number")
    return np.char.zfill(np.arange(count).astype(f"<U{KEY_WIDTH}"), KEY_WIDTH)


@njit(cache=True)
def ranx_run(query_keys: Any, bounds: Any, doc_keys: Any, scores: Any) -> Any:
    """``ranx.Run(...).run`` for query ``i``'s hits at ``bounds[i]:bounds[i + 1]`` of the columns: each
    query's hits sorted by score as ranx sorts them (``create_and_sort``, the code ``Run(dict)`` runs)."""
    query_ids = List()
    doc_ids = List()
    query_scores = List()
    for query in range(len(query_keys)):
        query_ids.append(str(query_keys[query]))
        doc_ids.append(doc_keys[bounds[query] : bounds[query + 1]].copy())
        query_scores.append(scores[bounds[query] : bounds[query + 1]].copy())
    return create_and_sort(query_ids, doc_ids, query_scores)


@njit(cache=True)
def _number(key: Any) -> int:
    value = 0
    for digit in str(key):  # a str, or a '<U12' element as ranx's runs built from arrays hold
        value = value * 10 + ord(digit) - 48
    return value


@njit(cache=True)
def run_columns(run: Any) -> tuple[Any, Any, Any]:
    """A ranx run keyed by :func:`keys` as columns: query number, document number, score, in the run's
    order."""
    size = 0
    for query in run:
        size += len(run[query])
    queries = np.empty(size, np.int64)
    documents = np.empty(size, np.int64)
    scores = np.empty(size, np.float64)
    row = 0
    for query in run:
        hits = run[query]
        number = _number(query)
        for document in hits:
            queries[row] = number
            documents[row] = _number(document)
            scores[row] = hits[document]
            row += 1
    return queries, documents, scores
