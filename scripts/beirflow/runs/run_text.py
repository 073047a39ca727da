"""A run's text written by compiled code: ``qid Q0 docid rank score tag`` a line, each score as Python's ``repr``.

``repr`` of a double is the shortest decimal that reads back as it (the closest such, ties to even), laid out as
Python lays it out: plainly from ``1e-4`` up to below ``1e16`` (``0.0001``, ``12.0``, ``1000000000000000.0``),
otherwise as ``d.ddde-05`` or ``de+16`` with at least two exponent digits. The shortest digits come from Ryu
(Ulf Adams, "Ryū: fast float-to-string conversion", PLDI 2018; ``ryu/d2s.c`` of github.com/ulfjack/ryu), ported
line for line in its variant built on a 64 x 64-bit product (numba has no 128-bit integer; the product is
LLVM's). Ryu and Python's ``dtoa`` both give the closest shortest digits; tests/test_run_columns.py holds the port to ``repr`` over random bit patterns, every
magnitude and the edges.

Lines are written into one byte buffer, a piece at a time, with the GIL let go: a run's pieces format side by
side on threads (:class:`beirflow.runs.columns.LinesWriter`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

POW5_INV_BITCOUNT = 125
POW5_BITCOUNT = 125
MOST_SCORE_BYTES = 24  # '-2.2250738585072014e-308'
MOST_RANK_BYTES = 20  # '-9223372036854775808'

_ZERO, _ONE, _TWO, _FIVE, _TEN, _HUNDRED = (np.uint64(n) for n in (0, 1, 2, 5, 10, 100))
_E4, _E8 = np.uint64(10**4), np.uint64(10**8)
_MANTISSA = np.uint64((1 << 52) - 1)
_HIDDEN_BIT = np.uint64(1 << 52)
_INVERSE_OF_5 = np.uint64(14757395258967641293)  # 5 * it == 1 modulo 2**64
_MULTIPLES_OF_5 = np.uint64(3689348814741910323)  # (2**64 - 1) // 5: a multiple of 5 times the inverse is no more


def _pow5_tables() -> tuple[np.ndarray, np.ndarray]:
    """Ryu's tables of 125-bit multipliers, as (low, high) 64-bit halves: ``floor(2**(floor(log2 5**i) + 125) /
    5**i) + 1`` for ``i`` < 342 and ``5**i`` to its top 125 bits for ``i`` < 326 (PrintDoubleLookupTable.java)."""

    def halves(value: int) -> tuple[int, int]:
        return value & (2**64 - 1), value >> 64

    inverse = np.array(
        [halves((1 << (5**i).bit_length() - 1 + POW5_INV_BITCOUNT) // 5**i + 1) for i in range(342)], dtype=np.uint64
    )
    direct = []
    for i in range(326):
        shift = (5**i).bit_length() - POW5_BITCOUNT
        direct.append(halves(5**i >> shift if shift >= 0 else 5**i << -shift))
    return inverse, np.array(direct, dtype=np.uint64)


POW5_INV_SPLIT, POW5_SPLIT = _pow5_tables()
POWERS_OF_TEN = np.array([10**n for n in range(20)], dtype=np.uint64)
DIGIT_PAIRS = np.frombuffer(b"".join(b"%02d" % n for n in range(100)), dtype=np.uint8)


def _umul128_code(typing_context: Any, a: Any, b: Any) -> Any:
    """The 128-bit product of two unsigned 64-bit integers, as (low, high) halves: one multiplication where the
    machine has it (numba has no 128-bit integer, LLVM does)."""
    signature = types.UniTuple(types.uint64, 2)(types.uint64, types.uint64)

    def generate(context: Any, builder: Any, signature: Any, arguments: Any) -> Any:
        wide, half = ir.IntType(128), ir.IntType(64)
        product = builder.mul(builder.zext(arguments[0], wide), builder.zext(arguments[1], wide))
        low = builder.trunc(product, half)
        high = builder.trunc(builder.lshr(product, ir.Constant(wide, 64)), half)
        return context.make_tuple(builder, signature.return_type, (low, high))

    return signature, generate


_umul128: Any = intrinsic(_umul128_code)


@njit(cache=True, nogil=True, inline="always")
def _shift_right_128(low: np.uint64, high: np.uint64, distance: int) -> np.uint64:
    """Bits 0..63 of the 128-bit (``low``, ``high``) shifted right by ``distance`` (0 < ``distance`` < 64)."""
    return (high << np.uint64(64 - distance)) | (low >> np.uint64(distance))


@njit(cache=True, nogil=True, inline="always")
def _borrow(after: np.uint64, before: np.uint64) -> np.uint64:
    return _ONE if after > before else _ZERO


@njit(cache=True, nogil=True, inline="always")
def _carry(after: np.uint64, before: np.uint64) -> np.uint64:
    return _ONE if after < before else _ZERO


@njit(cache=True, nogil=True)
def _mul_shift_all(
    m: np.uint64, mul_low: np.uint64, mul_high: np.uint64, j: int, mm_shift: int
) -> tuple[np.uint64, np.uint64, np.uint64]:
    """Ryu's ``mulShiftAll64`` without 128-bit integers: (vr, vp, vm), each ``(4m + d) * mul >> j``."""
    m = m << _ONE
    low, tmp = _umul128(m, mul_low)
    low_of_high, high = _umul128(m, mul_high)
    mid = tmp + low_of_high
    high += _carry(mid, tmp)

    low2 = low + mul_low
    mid2 = mid + mul_high + _carry(low2, low)
    high2 = high + _carry(mid2, mid)
    vp = _shift_right_128(mid2, high2, j - 64 - 1)

    if mm_shift == 1:
        low3 = low - mul_low
        mid3 = mid - mul_high - _borrow(low3, low)
        high3 = high - _borrow(mid3, mid)
        vm = _shift_right_128(mid3, high3, j - 64 - 1)
    else:
        low3 = low + low
        mid3 = mid + mid + _carry(low3, low)
        high3 = high + high + _carry(mid3, mid)
        low4 = low3 - mul_low
        mid4 = mid3 - mul_high - _borrow(low4, low3)
        high4 = high3 - _borrow(mid4, mid3)
        vm = _shift_right_128(mid4, high4, j - 64)

    vr = _shift_right_128(mid, high, j - 64 - 1)
    return vr, vp, vm


@njit(cache=True, nogil=True, inline="always")
def _pow5_factor(value: np.uint64) -> int:
    count = 0
    while True:
        value = value * _INVERSE_OF_5
        if value > _MULTIPLES_OF_5:
            return count
        count += 1


@njit(cache=True, nogil=True, inline="always")
def _log10_pow2(e: int) -> int:
    return (e * 78913) >> 18


@njit(cache=True, nogil=True, inline="always")
def _log10_pow5(e: int) -> int:
    return (e * 732923) >> 20


@njit(cache=True, nogil=True, inline="always")
def _pow5_bits(e: int) -> int:
    return ((e * 1217359) >> 19) + 1


@njit(cache=True, nogil=True)
def _shortest(ieee_mantissa: np.uint64, ieee_exponent: int) -> tuple[np.uint64, int]:
    """Ryu's ``d2d``: the shortest decimal (digits, power of ten) of a finite positive double, given its fields."""
    if ieee_exponent == 0:
        e2 = 1 - 1023 - 52 - 2
        m2 = ieee_mantissa
    else:
        e2 = ieee_exponent - 1023 - 52 - 2
        m2 = _HIDDEN_BIT | ieee_mantissa
    accept_bounds = (m2 & _ONE) == _ZERO
    mv = m2 << _TWO
    mm_shift = 1 if (ieee_mantissa != _ZERO or ieee_exponent <= 1) else 0

    vm_is_trailing_zeros = False
    vr_is_trailing_zeros = False
    if e2 >= 0:
        q = _log10_pow2(e2) - (1 if e2 > 3 else 0)
        e10 = q
        k = POW5_INV_BITCOUNT + _pow5_bits(q) - 1
        i = -e2 + q + k
        vr, vp, vm = _mul_shift_all(m2, POW5_INV_SPLIT[q, 0], POW5_INV_SPLIT[q, 1], i, mm_shift)
        if q <= 21:
            if mv % _FIVE == _ZERO:
                vr_is_trailing_zeros = _pow5_factor(mv) >= q
            elif accept_bounds:
                vm_is_trailing_zeros = _pow5_factor(mv - _ONE - np.uint64(mm_shift)) >= q
            elif _pow5_factor(mv + _TWO) >= q:
                vp -= _ONE
    else:
        q = _log10_pow5(-e2) - (1 if -e2 > 1 else 0)
        e10 = q + e2
        i = -e2 - q
        k = _pow5_bits(i) - POW5_BITCOUNT
        j = q - k
        vr, vp, vm = _mul_shift_all(m2, POW5_SPLIT[i, 0], POW5_SPLIT[i, 1], j, mm_shift)
        if q <= 1:
            vr_is_trailing_zeros = True
            if accept_bounds:
                vm_is_trailing_zeros = mm_shift == 1
            else:
                vp -= _ONE
        elif q < 63:
            vr_is_trailing_zeros = (mv & ((_ONE << np.uint64(q)) - _ONE)) == _ZERO

    removed = 0
    last_removed_digit = _ZERO
    if vm_is_trailing_zeros or vr_is_trailing_zeros:  # the general case, rare
        while True:
            vp_div10, vm_div10 = vp // _TEN, vm // _TEN
            if vp_div10 <= vm_div10:
                break
            vm_mod10 = vm - _TEN * vm_div10
            vr_div10 = vr // _TEN
            vr_mod10 = vr - _TEN * vr_div10
            vm_is_trailing_zeros = vm_is_trailing_zeros and vm_mod10 == _ZERO
            vr_is_trailing_zeros = vr_is_trailing_zeros and last_removed_digit == _ZERO
            last_removed_digit = vr_mod10
            vr, vp, vm = vr_div10, vp_div10, vm_div10
            removed += 1
        if vm_is_trailing_zeros:
            while True:
                vm_div10 = vm // _TEN
                if vm - _TEN * vm_div10 != _ZERO:
                    break
                vp_div10 = vp // _TEN
                vr_div10 = vr // _TEN
                vr_mod10 = vr - _TEN * vr_div10
                vr_is_trailing_zeros = vr_is_trailing_zeros and last_removed_digit == _ZERO
                last_removed_digit = vr_mod10
                vr, vp, vm = vr_div10, vp_div10, vm_div10
                removed += 1
        if vr_is_trailing_zeros and last_removed_digit == _FIVE and vr % _TWO == _ZERO:
            last_removed_digit = np.uint64(4)  # round to even when the exact number is ...50..0
        round_up = (vr == vm and (not accept_bounds or not vm_is_trailing_zeros)) or last_removed_digit >= _FIVE
    else:  # the common case
        round_up = False
        vp_div100, vm_div100 = vp // _HUNDRED, vm // _HUNDRED
        if vp_div100 > vm_div100:
            vr_div100 = vr // _HUNDRED
            round_up = vr - _HUNDRED * vr_div100 >= np.uint64(50)
            vr, vp, vm = vr_div100, vp_div100, vm_div100
            removed += 2
        while True:
            vp_div10, vm_div10 = vp // _TEN, vm // _TEN
            if vp_div10 <= vm_div10:
                break
            vr_div10 = vr // _TEN
            round_up = vr - _TEN * vr_div10 >= _FIVE
            vr, vp, vm = vr_div10, vp_div10, vm_div10
            removed += 1
        round_up = vr == vm or round_up
    return vr + (_ONE if round_up else _ZERO), e10 + removed


@njit(cache=True, nogil=True)
def _small_integer(ieee_mantissa: np.uint64, ieee_exponent: int) -> tuple[np.uint64, int]:
    """Ryu's ``d2d_small_int``: a whole number below 2**53 as (digits without trailing zeros, power of ten), or
    (0, 0) for any other double."""
    e2 = ieee_exponent - 1023 - 52
    if e2 > 0 or e2 < -52:
        return _ZERO, 0
    m2 = _HIDDEN_BIT | ieee_mantissa
    if m2 & ((_ONE << np.uint64(-e2)) - _ONE) != _ZERO:
        return _ZERO, 0
    digits = m2 >> np.uint64(-e2)
    exponent = 0
    while digits % _TEN == _ZERO:
        digits = digits // _TEN
        exponent += 1
    return digits, exponent


@njit(cache=True, nogil=True, inline="always")
def _write_three(first: int, second: int, third: int, out: np.ndarray, at: int) -> int:
    out[at], out[at + 1], out[at + 2] = first, second, third
    return at + 3


@njit(cache=True, nogil=True, inline="always")
def _decimal_length(value: np.uint64) -> int:
    """How many decimal digits ``value`` has; Ryu's shortest digits are at most 17, most often 15 to 17."""
    length = 20
    while length > 1 and value < POWERS_OF_TEN[length - 1]:
        length -= 1
    return length


@njit(cache=True, nogil=True, inline="always")
def _write_pair(pair: np.uint64, out: np.ndarray, at: int) -> None:
    index, to = _TWO * pair, np.uint64(at)
    out[to] = DIGIT_PAIRS[index]
    out[to + _ONE] = DIGIT_PAIRS[index + _ONE]


@njit(cache=True, nogil=True, inline="always")
def _write_digits(value: np.uint64, length: int, out: np.ndarray, at: int) -> None:
    """Writes the ``length`` decimal digits of ``value`` at ``out[at:]``, the last eight as two independent halves
    (as Ryu's ``to_chars``), then two at a time."""
    end = at + length
    if value >= _E8:
        top = value // _E8
        low = value - _E8 * top
        low_high, low_low = low // _E4, low % _E4
        _write_pair(low_low % _HUNDRED, out, end - 2)
        _write_pair(low_low // _HUNDRED, out, end - 4)
        _write_pair(low_high % _HUNDRED, out, end - 6)
        _write_pair(low_high // _HUNDRED, out, end - 8)
        end -= 8
        value = top
    while value >= _HUNDRED:
        quotient = value // _HUNDRED
        end -= 2
        _write_pair(value - _HUNDRED * quotient, out, end)
        value = quotient
    if value >= _TEN:
        _write_pair(value, out, end - 2)
    else:
        out[end - 1] = 48 + np.int64(value)


@njit(cache=True, nogil=True)
def _write_score(bits: np.uint64, out: np.ndarray, at: int) -> int:
    """Writes ``repr`` of the double whose bits are ``bits`` at ``out[at:]``; returns where it ends."""
    negative = (bits >> np.uint64(63)) != _ZERO
    ieee_mantissa = bits & _MANTISSA
    ieee_exponent = np.int64((bits >> np.uint64(52)) & np.uint64(0x7FF))
    if ieee_exponent == 0x7FF and ieee_mantissa != _ZERO:
        return _write_three(110, 97, 110, out, at)  # 'nan', whatever its sign
    if negative:
        out[at] = 45  # '-'
        at += 1
    if ieee_exponent == 0x7FF:
        return _write_three(105, 110, 102, out, at)  # 'inf'
    if ieee_exponent == 0 and ieee_mantissa == _ZERO:
        return _write_three(48, 46, 48, out, at)  # '0.0'
    digits, exponent = _small_integer(ieee_mantissa, ieee_exponent)
    if digits == _ZERO:
        digits, exponent = _shortest(ieee_mantissa, ieee_exponent)

    length = _decimal_length(digits)
    point = exponent + length - 1  # the power of ten of the first digit
    if -4 <= point < 0:  # plainly: 0.000ddd
        out[at] = 48
        out[at + 1] = 46
        for index in range(-point - 1):
            out[at + 2 + index] = 48
        _write_digits(digits, length, out, at + 1 - point)
        return at + 1 - point + length
    if 0 <= point < 16:  # plainly: ddd.ddd or ddd000.0
        whole = point + 1
        if length <= whole:
            _write_digits(digits, length, out, at)
            for index in range(length, whole):
                out[at + index] = 48
            out[at + whole] = 46
            out[at + whole + 1] = 48
            return at + whole + 2
        _write_digits(digits, length, out, at + 1)  # then the whole part moves left, making room for the point
        for index in range(whole):
            out[at + index] = out[at + 1 + index]
        out[at + whole] = 46
        return at + length + 1
    if length > 1:  # d.ddde+XX
        _write_digits(digits, length, out, at + 1)
        out[at] = out[at + 1]
        out[at + 1] = 46
        at += length + 1
    else:  # de+XX
        _write_digits(digits, length, out, at)
        at += 1
    out[at] = 101  # 'e'
    out[at + 1] = 45 if point < 0 else 43
    at += 2
    power = -point if point < 0 else point
    if power >= 100:
        out[at] = 48 + power // 100
        at += 1
    out[at] = 48 + (power // 10) % 10
    out[at + 1] = 48 + power % 10
    return at + 2


@njit(cache=True, nogil=True)
def _write_integer(value: int, out: np.ndarray, at: int) -> int:
    if value < 0:
        out[at] = 45
        at += 1
    magnitude = np.uint64(-(value + 1)) + _ONE if value < 0 else np.uint64(value)
    length = 1
    while length < 20 and magnitude >= POWERS_OF_TEN[length]:  # a rank has few digits
        length += 1
    _write_digits(magnitude, length, out, at)
    return at + length


@njit(cache=True, nogil=True, inline="always")
def _copy(source: np.ndarray, start: int, end: int, out: np.ndarray, at: int) -> int:
    """Copies ``source[start:end]`` to ``out[at:]``; returns where it ends. The indices are unsigned: numba then
    leaves out its check for negative ones, which costs a copy of short ids three times over."""
    begin, stop, to = np.uint64(start), np.uint64(end), np.uint64(at)
    index = _ZERO
    while begin + index < stop:
        out[to + index] = source[begin + index]
        index += _ONE
    return at + (end - start)


@njit(cache=True, nogil=True)
def _write_scores(score_bits: np.ndarray, out: np.ndarray) -> int:
    at = 0
    for row in range(len(score_bits)):
        at = _write_score(score_bits[row], out, at)
        out[at] = 10
        at += 1
    return at


@njit(cache=True, nogil=True)
def _write_lines(
    query_offsets: np.ndarray,
    query_data: np.ndarray,
    doc_offsets: np.ndarray,
    doc_data: np.ndarray,
    ranks: np.ndarray,
    score_bits: np.ndarray,
    tail: np.ndarray,
    out: np.ndarray,
) -> int:
    at = 0
    for row in range(len(ranks)):
        at = _copy(query_data, query_offsets[row], query_offsets[row + 1], out, at)
        out[at] = 32
        out[at + 1] = 81  # 'Q'
        out[at + 2] = 48
        out[at + 3] = 32
        at = _copy(doc_data, doc_offsets[row], doc_offsets[row + 1], out, at + 4)
        out[at] = 32
        at = _write_integer(ranks[row], out, at + 1)
        out[at] = 32
        at = _write_score(score_bits[row], out, at + 1)
        at = _copy(tail, 0, len(tail), out, at)
    return at


def score_text(scores: np.ndarray) -> str:
    """``repr`` of each of ``scores``, a line each."""
    bits = np.ascontiguousarray(scores, dtype=np.float64).view(np.uint64)
    out = np.empty(len(bits) * (MOST_SCORE_BYTES + 1), dtype=np.uint8)
    return out[: _write_scores(bits, out)].tobytes().decode("ascii")


def _text_column(strings: Any) -> tuple[np.ndarray, np.ndarray]:
    """An Arrow string array's (offsets of its rows, its UTF-8 bytes), without copying them."""
    import pyarrow as pa

    if isinstance(strings, pa.ChunkedArray):
        strings = strings.combine_chunks()
    if not (pa.types.is_string(strings.type) or pa.types.is_large_string(strings.type)):
        strings = strings.cast(pa.large_string())
    if strings.null_count:
        raise ValueError("a run's query and document ids hold no nulls")
    offset_type = np.int32 if pa.types.is_string(strings.type) else np.int64
    _, offsets, data = strings.buffers()
    row_offsets = np.frombuffer(offsets, dtype=offset_type)[strings.offset : strings.offset + len(strings) + 1]
    return row_offsets, (np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8))


def lines_text(query_ids: Any, doc_ids: Any, ranks: np.ndarray, scores: np.ndarray, tag: str) -> np.ndarray:
    """The lines ``qid Q0 docid rank score tag`` of hits given as columns (query and document ids as Arrow string
    arrays), as UTF-8 bytes."""
    if not len(query_ids) == len(doc_ids) == len(ranks) == len(scores):
        raise ValueError(
            f"a run's columns differ in length: {len(query_ids)} query ids, {len(doc_ids)} document ids, "
            f"{len(ranks)} ranks, {len(scores)} scores"
        )
    query_offsets, query_data = _text_column(query_ids)
    doc_offsets, doc_data = _text_column(doc_ids)
    tail = np.frombuffer(f" {tag}\n".encode(), dtype=np.uint8)
    ids_bytes = int(query_offsets[-1] - query_offsets[0]) + int(doc_offsets[-1] - doc_offsets[0]) if len(ranks) else 0
    out = np.empty(ids_bytes + len(ranks) * (len(" Q0  ") + MOST_RANK_BYTES + 1 + MOST_SCORE_BYTES + len(tail)), np.uint8)
    end = _write_lines(
        query_offsets,
        query_data,
        doc_offsets,
        doc_data,
        np.ascontiguousarray(ranks, dtype=np.int64),
        np.ascontiguousarray(scores, dtype=np.float64).view(np.uint64),
        tail,
        out,
    )
    return out[:end]
