"""Condorcet fusion as ranx computes it, compiled.

ranx orders each query's candidates with Python's ``sorted`` and ``cmp_to_key`` of a vote: ``x`` comes before
``y`` when at least half of the runs place ``x`` strictly before ``y``. That is not an order (with two runs that
split, each candidate comes before the other), so the result is whatever CPython's list sort makes of the
answers, and it takes ranx about 50 ms of Python per query of two runs of 1,000 hits. :func:`replayed_sort` is the sort of
CPython 3.11 to 3.14 (Objects/listsort.txt: natural runs, found as 3.13 finds them from 3.13 on, binary insertion
up to the minimum run, powersort's merge order, merges that gallop by an adaptive threshold), so it asks the same
questions in the same sequence and gets the same answers; only the answering is compiled. Another Python's sort
may differ: there Condorcet runs in ranx (:data:`REPLAYS_THIS_PYTHON`).
"""

from __future__ import annotations

import sys

import numpy as np
from numba import njit

# 3.11 brought powersort's merge order; 3.13 changed how the list sort finds natural runs (a descending one may hold
# equal elements). The replay is checked against this Python's own sort by tests/test_dense.py, and against the
# sorts of Python 3.12, 3.13 and 3.14 (Pyodide's, run by Node) where those can run.
REPLAYS_THIS_PYTHON = (3, 11) <= sys.version_info[:2] < (3, 15)
FINDS_RUNS_OF_EQUALS = sys.version_info[:2] >= (3, 13)
ABSENT = 1_000_000  # ranx's place of a candidate a run does not hold
MIN_GALLOP = 7
STACK = 85  # pending runs: more than a list of 2**64 elements could need


@njit(cache=True)
def _before(places: np.ndarray, x: int, y: int) -> bool:
    """ranx's comparator, as the sort asks it (``x < y``): whether at least half of the runs (the rows of
    ``places``) place candidate ``x`` strictly before candidate ``y``."""
    votes = 0
    for run in range(places.shape[0]):
        if places[run, x] < places[run, y]:
            votes += 1
    return 2 * votes >= places.shape[0]


@njit(cache=True)
def _minimum_run(n: int) -> int:
    low_bits = 0
    while n >= 64:
        low_bits |= n & 1
        n >>= 1
    return n + low_bits


@njit(cache=True)
def _binary_insertion(places: np.ndarray, a: np.ndarray, lo: int, hi: int, start: int) -> None:
    """Sorts ``a[lo:hi]`` by inserting each item from ``start`` on into the sorted ``a[lo:start]``, after any it
    is not before."""
    if start == lo:
        start += 1
    for current in range(start, hi):
        pivot = a[current]
        left, right = lo, current
        while left < right:
            middle = left + ((right - left) >> 1)
            if _before(places, pivot, a[middle]):
                right = middle
            else:
                left = middle + 1
        for shifted in range(current, left, -1):
            a[shifted] = a[shifted - 1]
        a[left] = pivot


@njit(cache=True)
def _natural_run(places: np.ndarray, a: np.ndarray, lo: int, hi: int) -> tuple[int, bool]:
    """The length of the run starting at ``lo``: the longest stretch in which no item is before the one ahead of it,
    or in which each is (descending, strictly)."""
    if lo + 1 == hi:
        return 1, False
    descending = _before(places, a[lo + 1], a[lo])
    end = lo + 2
    while end < hi and _before(places, a[end], a[end - 1]) == descending:
        end += 1
    return end - lo, descending


@njit(cache=True)
def _reverse(a: np.ndarray, lo: int, hi: int) -> None:
    hi -= 1
    while lo < hi:
        a[lo], a[hi] = a[hi], a[lo]
        lo, hi = lo + 1, hi - 1


@njit(cache=True)
def _ascending_run(places: np.ndarray, a: np.ndarray, lo: int, remaining: int) -> int:
    """CPython 3.13's ``count_run`` (gh-116554): the length of the run starting at ``lo``, made ascending in place.
    A run in which no item is before the one ahead of it; or, where the first step goes down, a descending run
    that may hold stretches of items neither before the other (each reversed on the spot, so that reversing the
    whole run keeps their order), then extended by what ascends after it."""
    n = 1
    while n < remaining and not _before(places, a[lo + n], a[lo + n - 1]):
        n += 1
    if n == remaining:
        return n
    if n > 1:  # an ascending stretch ended by a smaller item: a run, unless all of it was equal
        if _before(places, a[lo], a[lo + n - 1]):
            return n
        _reverse(a, lo, lo + n)
    n += 1
    equal = 0
    while n < remaining:
        if _before(places, a[lo + n], a[lo + n - 1]):
            if equal:
                _reverse(a, lo + n - equal - 1, lo + n)
                equal = 0
        elif _before(places, a[lo + n - 1], a[lo + n]):
            break
        else:
            equal += 1
        n += 1
    if equal:
        _reverse(a, lo + n - equal - 1, lo + n)
    _reverse(a, lo, lo + n)
    while n < remaining and not _before(places, a[lo + n], a[lo + n - 1]):
        n += 1
    return n


@njit(cache=True)
def _gallop_left(places: np.ndarray, key: int, a: np.ndarray, base: int, n: int, hint: int) -> int:
    """Where ``key`` goes in the sorted ``a[base:base + n]``, left of any it is not before: the first ``k`` with
    ``a[k]`` not before ``key``, found from ``hint`` by steps of 1, 3, 7, ... then halving."""
    last, offset = 0, 1
    if _before(places, a[base + hint], key):
        most = n - hint
        while offset < most and _before(places, a[base + hint + offset], key):
            last, offset = offset, (offset << 1) + 1
        offset = min(offset, most)
        last, offset = last + hint, offset + hint
    else:
        most = hint + 1
        while offset < most and not _before(places, a[base + hint - offset], key):
            last, offset = offset, (offset << 1) + 1
        offset = min(offset, most)
        last, offset = hint - offset, hint - last
    last += 1
    while last < offset:
        middle = last + ((offset - last) >> 1)
        if _before(places, a[base + middle], key):
            last = middle + 1
        else:
            offset = middle
    return offset


@njit(cache=True)
def _gallop_right(places: np.ndarray, key: int, a: np.ndarray, base: int, n: int, hint: int) -> int:
    """Where ``key`` goes in the sorted ``a[base:base + n]``, right of any it is not before: the first ``k`` with
    ``key`` before ``a[k]``."""
    last, offset = 0, 1
    if _before(places, key, a[base + hint]):
        most = hint + 1
        while offset < most and _before(places, key, a[base + hint - offset]):
            last, offset = offset, (offset << 1) + 1
        offset = min(offset, most)
        last, offset = hint - offset, hint - last
    else:
        most = n - hint
        while offset < most and not _before(places, key, a[base + hint + offset]):
            last, offset = offset, (offset << 1) + 1
        offset = min(offset, most)
        last, offset = last + hint, offset + hint
    last += 1
    while last < offset:
        middle = last + ((offset - last) >> 1)
        if _before(places, key, a[base + middle]):
            offset = middle
        else:
            last = middle + 1
    return offset


GOING, DONE, LAST_ONE = 0, 1, 2  # a merge goes on, is done, or has one item of the copied run left to place


@njit(cache=True)
def _merge_low(places: np.ndarray, a: np.ndarray, copy: np.ndarray, gallop: np.ndarray, pa: int, na: int, nb: int) -> None:
    """Merges the sorted ``a[pa:pa + na]`` and the sorted run after it (``nb`` items), copying the first (the
    shorter) aside and filling from the left. ``gallop[0]``: the threshold of wins in a row that starts galloping."""
    copy[:na] = a[pa : pa + na]
    destination, pb, pc = pa, pa + na, 0  # pc: the next item of the copy
    a[destination] = a[pb]
    destination, pb, nb = destination + 1, pb + 1, nb - 1
    state = DONE if nb == 0 else LAST_ONE if na == 1 else GOING
    threshold = gallop[0]
    while state == GOING:
        a_wins = b_wins = 0
        while True:
            if _before(places, a[pb], copy[pc]):
                a[destination] = a[pb]
                destination, pb, nb, b_wins, a_wins = destination + 1, pb + 1, nb - 1, b_wins + 1, 0
                if nb == 0:
                    state = DONE
                    break
                if b_wins >= threshold:
                    break
            else:
                a[destination] = copy[pc]
                destination, pc, na, a_wins, b_wins = destination + 1, pc + 1, na - 1, a_wins + 1, 0
                if na == 1:
                    state = LAST_ONE
                    break
                if a_wins >= threshold:
                    break
        if state != GOING:
            break
        threshold += 1
        while True:
            threshold -= threshold > 1
            gallop[0] = threshold
            k = _gallop_right(places, a[pb], copy, pc, na, 0)
            a_wins = k
            if k:
                a[destination : destination + k] = copy[pc : pc + k]
                destination, pc, na = destination + k, pc + k, na - k
                if na == 1:
                    state = LAST_ONE
                    break
                if na == 0:  # only an inconsistent comparator gets here
                    state = DONE
                    break
            a[destination] = a[pb]
            destination, pb, nb = destination + 1, pb + 1, nb - 1
            if nb == 0:
                state = DONE
                break
            k = _gallop_left(places, copy[pc], a, pb, nb, 0)
            b_wins = k
            if k:
                for step in range(k):  # forwards: the destination is left of the source
                    a[destination + step] = a[pb + step]
                destination, pb, nb = destination + k, pb + k, nb - k
                if nb == 0:
                    state = DONE
                    break
            a[destination] = copy[pc]
            destination, pc, na = destination + 1, pc + 1, na - 1
            if na == 1:
                state = LAST_ONE
                break
            if a_wins < MIN_GALLOP and b_wins < MIN_GALLOP:
                break
        if state != GOING:
            break
        threshold += 1
        gallop[0] = threshold
    if state == LAST_ONE:  # the rest of the second run, then the copy's last item
        for step in range(nb):
            a[destination + step] = a[pb + step]
        a[destination + nb] = copy[pc]
    elif na:
        a[destination : destination + na] = copy[pc : pc + na]


@njit(cache=True)
def _merge_high(places: np.ndarray, a: np.ndarray, copy: np.ndarray, gallop: np.ndarray, pa: int, na: int, nb: int) -> None:
    """Merges the sorted ``a[pa:pa + na]`` and the sorted run after it (``nb`` items, the shorter), copying the
    second aside and filling from the right. :func:`_merge_low` mirrored, kept apart as CPython keeps its merge_lo
    and merge_hi: each asks its questions with its own operands first, and the answers are not an order."""
    start_a = pa
    copy[:nb] = a[pa + na : pa + na + nb]
    destination, pa, pc = pa + na + nb - 1, pa + na - 1, nb - 1  # the last items: of the merge, of a, of the copy
    a[destination] = a[pa]
    destination, pa, na = destination - 1, pa - 1, na - 1
    state = DONE if na == 0 else LAST_ONE if nb == 1 else GOING
    threshold = gallop[0]
    while state == GOING:
        a_wins = b_wins = 0
        while True:
            if _before(places, copy[pc], a[pa]):
                a[destination] = a[pa]
                destination, pa, na, a_wins, b_wins = destination - 1, pa - 1, na - 1, a_wins + 1, 0
                if na == 0:
                    state = DONE
                    break
                if a_wins >= threshold:
                    break
            else:
                a[destination] = copy[pc]
                destination, pc, nb, b_wins, a_wins = destination - 1, pc - 1, nb - 1, b_wins + 1, 0
                if nb == 1:
                    state = LAST_ONE
                    break
                if b_wins >= threshold:
                    break
        if state != GOING:
            break
        threshold += 1
        while True:
            threshold -= threshold > 1
            gallop[0] = threshold
            k = na - _gallop_right(places, copy[pc], a, start_a, na, na - 1)
            a_wins = k
            if k:
                destination, pa = destination - k, pa - k
                for step in range(k, 0, -1):  # backwards: the destination is right of the source
                    a[destination + step] = a[pa + step]
                na -= k
                if na == 0:
                    state = DONE
                    break
            a[destination] = copy[pc]
            destination, pc, nb = destination - 1, pc - 1, nb - 1
            if nb == 1:
                state = LAST_ONE
                break
            k = nb - _gallop_left(places, a[pa], copy, 0, nb, nb - 1)
            b_wins = k
            if k:
                destination, pc = destination - k, pc - k
                a[destination + 1 : destination + 1 + k] = copy[pc + 1 : pc + 1 + k]
                nb -= k
                if nb == 1:
                    state = LAST_ONE
                    break
                if nb == 0:  # only an inconsistent comparator gets here
                    state = DONE
                    break
            a[destination] = a[pa]
            destination, pa, na = destination - 1, pa - 1, na - 1
            if na == 0:
                state = DONE
                break
            if a_wins < MIN_GALLOP and b_wins < MIN_GALLOP:
                break
        if state != GOING:
            break
        threshold += 1
        gallop[0] = threshold
    if state == LAST_ONE:  # the rest of the first run, then the copy's first item before them
        for step in range(0, -na, -1):
            a[destination + step] = a[pa + step]
        a[destination - na] = copy[pc]
    elif nb:
        a[destination - nb + 1 : destination + 1] = copy[:nb]


@njit(cache=True)
def _merge_at(
    places: np.ndarray, a: np.ndarray, copy: np.ndarray, gallop: np.ndarray, stack: np.ndarray, count: int, i: int
) -> int:
    """Merges pending runs ``i`` and ``i + 1`` (``stack``: a run a row, its start, length and power); the new
    count of pending runs."""
    pa, na, pb, nb = stack[i, 0], stack[i, 1], stack[i + 1, 0], stack[i + 1, 1]
    stack[i, 1] = na + nb
    if i == count - 3:
        stack[i + 1] = stack[i + 2]
    count -= 1
    k = _gallop_right(places, a[pb], a, pa, na, 0)  # a's first k items are in place
    pa, na = pa + k, na - k
    if na == 0:
        return count
    nb = _gallop_left(places, a[pa + na - 1], a, pb, nb, nb - 1)  # b's items from nb on are in place
    if nb <= 0:
        return count
    if na <= nb:
        _merge_low(places, a, copy, gallop, pa, na, nb)
    else:
        _merge_high(places, a, copy, gallop, pa, na, nb)
    return count


@njit(cache=True)
def _power(start: int, n1: int, n2: int, n: int) -> int:
    """Powersort's power of the boundary between the runs ``[start, start + n1)`` and the next ``n2`` items, in a
    list of ``n``: the first bit in which their midpoints' fractions of ``n`` differ."""
    a = 2 * start + n1
    b = a + n1 + n2
    power = 0
    while True:
        power += 1
        if a >= n:
            a, b = a - n, b - n
        elif b >= n:
            return power
        a, b = a << 1, b << 1


@njit(cache=True)
def replayed_sort(places: np.ndarray, runs_of_equals: bool = FINDS_RUNS_OF_EQUALS) -> np.ndarray:
    """``sorted(range(n), key=cmp_to_key(ranx's comparator))`` on this Python, for the candidates whose places in
    each run are the rows of ``places`` (n columns); ``runs_of_equals``: the natural runs as CPython 3.13 and later
    find them."""
    n = places.shape[1]
    a = np.arange(n, dtype=np.int64)
    if n < 2:
        return a
    copy = np.empty((n + 1) // 2 + 1, dtype=np.int64)
    gallop = np.array([MIN_GALLOP], dtype=np.int64)
    stack = np.zeros((STACK, 3), dtype=np.int64)  # start, length, power
    count, lo, remaining = 0, 0, n
    minimum = _minimum_run(n)
    while remaining:
        if runs_of_equals:
            length = _ascending_run(places, a, lo, remaining)
        else:
            length, descending = _natural_run(places, a, lo, lo + remaining)
            if descending:
                _reverse(a, lo, lo + length)
        if length < minimum:
            forced = min(remaining, minimum)
            _binary_insertion(places, a, lo, lo + forced, lo + length)
            length = forced
        if count:
            power = _power(stack[count - 1, 0], stack[count - 1, 1], length, n)
            while count > 1 and stack[count - 2, 2] > power:
                count = _merge_at(places, a, copy, gallop, stack, count, count - 2)
            stack[count - 1, 2] = power
        stack[count, 0], stack[count, 1] = lo, length
        count += 1
        lo, remaining = lo + length, remaining - length
    while count > 1:
        i = count - 2
        if i > 0 and stack[i - 1, 1] < stack[i + 1, 1]:
            i -= 1
        count = _merge_at(places, a, copy, gallop, stack, count, i)
    return a


def condorcet_scores(
    rows: list[np.ndarray], places: list[np.ndarray], held: np.ndarray, order: np.ndarray, query_of_key: np.ndarray
) -> np.ndarray:
    """Per key (a query's candidate: ``query_of_key`` rising), ranx's Condorcet score: the query's candidates less
    the candidate's place in the replayed sort. Run ``r``'s hits are the keys ``rows[r]``, at ``places[r]`` in its
    query's hits (from 0); ``held[r, q]``: whether run ``r`` holds query ``q`` (only those vote, as ranx is given
    only those); ``order``: the keys in ranx's order of candidates, from which its sort starts."""
    matrix = np.full((len(rows), len(query_of_key)), ABSENT, dtype=np.int64)
    for run in range(len(rows)):
        matrix[run, rows[run]] = places[run]
    bounds = np.searchsorted(query_of_key[order], np.arange(held.shape[1] + 1))
    return _scores(matrix, order, bounds, held)


@njit(cache=True)
def _scores(matrix: np.ndarray, order: np.ndarray, bounds: np.ndarray, held: np.ndarray) -> np.ndarray:
    scores = np.zeros(len(order))
    for query in range(len(bounds) - 1):
        start, stop = bounds[query], bounds[query + 1]
        members = np.flatnonzero(held[:, query])
        candidates = np.empty((len(members), stop - start), dtype=np.int64)
        for row in range(len(members)):
            for column in range(stop - start):
                candidates[row, column] = matrix[members[row], order[start + column]]
        ranked = replayed_sort(candidates)
        for place in range(stop - start):
            scores[order[start + ranked[place]]] = stop - start - place
    return scores
