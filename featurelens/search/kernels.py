"""CPU dot products of query rows with stored rows (float16, int8 or float32), no float32 copy.

On the CPU torch multiplies float32 (MKL), so float16 rows must first be copied into a float32
buffer, and MKL's products with a few query rows run far below the core's peak. These kernels
(compiled by Numba) convert each stored value in registers (``vcvtph2ps`` for float16 where the
CPU has F16C, integer steps where it has not) and multiply four stored rows with four query rows
at a time: 16 float32 accumulators, one load of each value. Sums are float32, as MKL's.

Measured (one thread, AMD EPYC with AVX-512, rows out of the cache as in a search: 256 × 1280
float16 rows per call), against the float32 copy and ``torch.mm``: 4 query rows 64 µs vs 109 µs
(the kernel reads the rows at the speed of one bfloat16 matrix-vector product), 8 rows 96 vs 130,
16 rows 144 vs 181.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import platform

import numpy as np
import torch
from llvmlite import binding, ir
from numba import njit, types
from numba.core import config
from numba.extending import intrinsic, overload

__all__ = ["cells_dots", "compile_for", "reads", "rows_dots", "stored_view"]

_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}   # sums may be reordered (vectorised); NaN and inf kept
_MIN_ROWS_PER_THREAD = 1024


def _jit(fn):
    """Compiled without the GIL, kept in Numba's cache (next to this file or in the user's cache
    folder); where neither is writable, compiled once per process instead of failing the import."""
    try:
        return njit(fastmath=_FASTMATH, nogil=True, cache=True)(fn)
    except RuntimeError:  # "cannot cache function …: no locator available"
        return njit(fastmath=_FASTMATH, nogil=True)(fn)


def reads(dtype: torch.dtype) -> bool:
    """The kernels read rows of this dtype as stored (not with ``NUMBA_DISABLE_JIT``, a debugging switch)."""
    return dtype in (torch.float16, torch.int8, torch.float32) and not config.DISABLE_JIT


def _native_half() -> bool:
    """Whether Numba's target converts float16 in one instruction (F16C on x86, always on ARM64).
    Elsewhere LLVM calls a helper that Numba's JIT cannot link, which aborts the process, so the
    kernels convert the bits themselves. ``NUMBA_CPU_NAME`` (e.g. ``generic``, for caches shared
    between machines) has only the features ``NUMBA_CPU_FEATURES`` lists."""
    if platform.machine().lower() in ("arm64", "aarch64"):
        return True
    if config.CPU_NAME:
        return "+f16c" in (config.CPU_FEATURES or "")
    return bool(binding.get_host_cpu_features().get("f16c", False))


_NATIVE_HALF = _native_half()


def stored_view(tensor: torch.Tensor) -> np.ndarray:
    """A CPU tensor's values as the kernels read them (no copy): float16 as its ``uint16`` bits,
    int8 and float32 as they are."""
    if tensor.dtype == torch.float16:
        return tensor.numpy().view(np.uint16)
    if reads(tensor.dtype):
        return tensor.numpy()
    raise TypeError(f"the CPU kernels read float16, int8 or float32 rows, not {tensor.dtype}")


def _to_f32(value):
    """A stored value as float32; float16 arrives as its ``uint16`` bits. Compiled code uses the
    overload below; this body runs only where Numba does not compile (``NUMBA_DISABLE_JIT``)."""
    if isinstance(value, np.uint16):
        return np.float32(np.array(value).view(np.float16))
    return np.float32(value)


@intrinsic
def _half_bits_to_f32(typingctx, bits):
    """The float16 whose bits are ``bits`` (uint16), as float32 (exact)."""
    def codegen(context, builder, signature, args):
        return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())
    return types.float32(types.uint16), codegen


@intrinsic
def _bits_to_f32(typingctx, bits):
    """The float32 whose bits are ``bits`` (uint32)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.uint32), codegen


@njit(inline="always")
def _half_bits_to_f32_by_integers(bits):
    """As :func:`_half_bits_to_f32`, in integer steps: for targets without a float16 instruction."""
    h = np.uint32(bits)
    if h & np.uint32(0x7C00) == np.uint32(0x7C00):  # inf, NaN
        value = _bits_to_f32(np.uint32(0x7F800000) | ((h & np.uint32(0x3FF)) << np.uint32(13)))
    else:  # normal, subnormal, zero: float32 bits of the same mantissa, exponent rebased by an exact product
        value = _bits_to_f32((h & np.uint32(0x7FFF)) << np.uint32(13)) * np.float32(2.0 ** 112)
    return -value if h & np.uint32(0x8000) else value


@overload(_to_f32, inline="always")
def _to_f32_impl(value):
    if value == types.uint16:
        if _NATIVE_HALF:
            return lambda value: _half_bits_to_f32(value)
        return lambda value: _half_bits_to_f32_by_integers(value)
    return lambda value: np.float32(value)


@_jit
def _block_dots(x_rc, r, q_kc, k, out_kr, col):
    """``out_kr[k:k+4, col:col+4]`` = query rows ``k:k+4`` · stored rows ``r:r+4``."""
    a00 = a01 = a02 = a03 = a10 = a11 = a12 = a13 = np.float32(0)
    a20 = a21 = a22 = a23 = a30 = a31 = a32 = a33 = np.float32(0)
    for c in range(x_rc.shape[1]):
        x0, x1 = _to_f32(x_rc[r, c]), _to_f32(x_rc[r + 1, c])
        x2, x3 = _to_f32(x_rc[r + 2, c]), _to_f32(x_rc[r + 3, c])
        q0, q1, q2, q3 = q_kc[k, c], q_kc[k + 1, c], q_kc[k + 2, c], q_kc[k + 3, c]
        a00 += q0 * x0
        a01 += q0 * x1
        a02 += q0 * x2
        a03 += q0 * x3
        a10 += q1 * x0
        a11 += q1 * x1
        a12 += q1 * x2
        a13 += q1 * x3
        a20 += q2 * x0
        a21 += q2 * x1
        a22 += q2 * x2
        a23 += q2 * x3
        a30 += q3 * x0
        a31 += q3 * x1
        a32 += q3 * x2
        a33 += q3 * x3
    out_kr[k, col], out_kr[k, col + 1], out_kr[k, col + 2], out_kr[k, col + 3] = a00, a01, a02, a03
    out_kr[k + 1, col], out_kr[k + 1, col + 1], out_kr[k + 1, col + 2], out_kr[k + 1, col + 3] = a10, a11, a12, a13
    out_kr[k + 2, col], out_kr[k + 2, col + 1], out_kr[k + 2, col + 2], out_kr[k + 2, col + 3] = a20, a21, a22, a23
    out_kr[k + 3, col], out_kr[k + 3, col + 1], out_kr[k + 3, col + 2], out_kr[k + 3, col + 3] = a30, a31, a32, a33


@_jit
def _row_block_dots(x_rc, r, q_kc, k, out_kr, col):
    """``out_kr[k, col:col+4]`` = query row ``k`` · stored rows ``r:r+4``."""
    a0 = a1 = a2 = a3 = np.float32(0)
    for c in range(x_rc.shape[1]):
        q = q_kc[k, c]
        a0 += q * _to_f32(x_rc[r, c])
        a1 += q * _to_f32(x_rc[r + 1, c])
        a2 += q * _to_f32(x_rc[r + 2, c])
        a3 += q * _to_f32(x_rc[r + 3, c])
    out_kr[k, col], out_kr[k, col + 1], out_kr[k, col + 2], out_kr[k, col + 3] = a0, a1, a2, a3


@_jit
def _one_row_dots(x_rc, r, q_kc, k, out_kr, col):
    """``out_kr[k, col]`` = query row ``k`` · stored row ``r``."""
    acc = np.float32(0)
    for c in range(x_rc.shape[1]):
        acc += q_kc[k, c] * _to_f32(x_rc[r, c])
    out_kr[k, col] = acc


@_jit
def _squares(x_rc, r, sq_r, col):
    """``sq_r[col] = Σ_c x_rc[r, c]²``."""
    acc = np.float32(0)
    for c in range(x_rc.shape[1]):
        v = _to_f32(x_rc[r, c])
        acc += v * v
    sq_r[col] = acc


@_jit
def _range_dots(x_rc, first, last, q_kc, out_kr, col, sq_r):
    """Stored rows ``first:last`` → ``out_kr[:, col + i]`` (and ``sq_r[col + i]`` when ``sq_r`` is
    not empty) for ``i`` in ``0 : last - first``."""
    k_full = q_kc.shape[0] - q_kc.shape[0] % 4
    r = first
    while r + 4 <= last:
        for k in range(0, k_full, 4):
            _block_dots(x_rc, r, q_kc, k, out_kr, col + r - first)
        for k in range(k_full, q_kc.shape[0]):
            _row_block_dots(x_rc, r, q_kc, k, out_kr, col + r - first)
        r += 4
    while r < last:
        for k in range(q_kc.shape[0]):
            _one_row_dots(x_rc, r, q_kc, k, out_kr, col + r - first)
        r += 1
    if sq_r.shape[0] > 0:
        for r in range(first, last):
            _squares(x_rc, r, sq_r, col + r - first)


@_jit
def _cells_dots(feats_lsc, first, last, cell_i, row_start, row_stop, q_rc, out_rs):
    """For each used cell ``i``: its query rows ``row_start[i] : row_stop[i]`` · images
    ``first:last`` of grid cell ``cell_i[i]`` → the same rows of ``out_rs``."""
    for i in range(cell_i.shape[0]):
        rows = slice(row_start[i], row_stop[i])
        _range_dots(feats_lsc[cell_i[i]], first, last, q_rc[rows], out_rs[rows], 0, out_rs[0, :0])


@functools.cache
def _pool(threads: int) -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="featurelens-dots")


os.register_at_fork(after_in_child=_pool.cache_clear)  # a forked child has none of the parent's threads


def _parts(weights: np.ndarray, minimum: float) -> list[tuple[int, int]]:
    """Items ``0:len(weights)`` in up to ``torch.get_num_threads()`` consecutive ranges of about equal
    weight, each at least ``minimum`` (the kernels release the GIL: one range per thread)."""
    total = float(weights.sum())
    parts = max(1, min(torch.get_num_threads(), len(weights), int(total // minimum)))
    if parts == 1:
        return [(0, len(weights))]
    bounds = np.searchsorted(np.cumsum(weights), total * np.arange(1, parts) / parts)
    edges = [0, *sorted(set(int(b) + 1 for b in bounds) - {len(weights)}), len(weights)]
    return list(zip(edges, edges[1:]))


def _run(calls: list) -> None:
    if len(calls) == 1:
        calls[0]()
        return
    for future in [_pool(len(calls)).submit(call) for call in calls]:
        future.result()


def rows_dots(x_rc: np.ndarray, q_kc: np.ndarray, out_kr: np.ndarray, sq_r: np.ndarray | None = None) -> None:
    """``out_kr = q_kc @ x_rc.T`` (float32) and, with ``sq_r``, each row's squared norm.

    ``x_rc`` ``(R, C)`` from :func:`stored_view`, ``q_kc`` ``(K, C)`` float32, ``out_kr`` ``(K, R)``
    float32 and ``sq_r`` ``(R,)`` float32, all C-contiguous. Rows are split over
    ``torch.get_num_threads()`` threads (groups of 4, at least 1024 rows each).
    """
    sq = np.empty(0, np.float32) if sq_r is None else sq_r
    groups = _parts(np.ones(-(-x_rc.shape[0] // 4)), _MIN_ROWS_PER_THREAD / 4)
    spans = [(4 * a, min(x_rc.shape[0], 4 * b)) for a, b in groups]
    _run([functools.partial(_range_dots, x_rc, first, last, q_kc, out_kr, first, sq) for first, last in spans])


def cells_dots(feats_lsc: np.ndarray, first: int, last: int, cell_i: np.ndarray, row_start: np.ndarray,
               row_stop: np.ndarray, q_rc: np.ndarray, out_rs: np.ndarray) -> None:
    """Per grid cell, only its query rows: ``out_rs[row_start[i]:row_stop[i]] = q_rc[same rows] @
    feats_lsc[cell_i[i], first:last].T`` for each ``i``.

    ``feats_lsc`` ``(L, S, C)`` from :func:`stored_view`; ``cell_i``, ``row_start``, ``row_stop``
    ``(n,)`` int64; ``q_rc`` ``(R, C)`` and ``out_rs`` ``(R, last - first)`` float32. Cells are split
    over ``torch.get_num_threads()`` threads by their rows (each row reads ``last - first`` images).
    """
    groups = _parts((row_stop - row_start + 1).astype(np.float64) * (last - first), _MIN_ROWS_PER_THREAD)
    _run([functools.partial(_cells_dots, feats_lsc, first, last, cell_i[a:b], row_start[a:b], row_stop[a:b],
                            q_rc, out_rs) for a, b in groups])


@functools.cache
def compile_for(dtype: torch.dtype) -> None:
    """Compiles the kernels for rows of ``dtype`` now (about 2 s the first time on a machine, then
    loaded from Numba's cache), so that a first search does not wait for it."""
    rows_lsc = stored_view(torch.zeros(1, 4, 4, dtype=dtype))
    q_kc, out_kr = np.zeros((4, 4), np.float32), np.zeros((4, 4), np.float32)
    rows_dots(rows_lsc[0], q_kc, out_kr, np.zeros(4, np.float32))
    one = np.ones(1, np.int64)
    cells_dots(rows_lsc, 0, 4, one - 1, one - 1, one * 4, q_kc, out_kr)
