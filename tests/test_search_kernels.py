"""The CPU kernels of region search (featurelens.search.kernels): products of float32 query rows with
rows as stored (float16, int8, float32) equal float64 products, for every row and query-row count
(the 4 × 4 blocks and their tails), split over threads or not, and inf/NaN are not hidden."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from featurelens.search import kernels


@pytest.fixture
def threads():
    """Sets torch's thread count (which the kernels split their work by) for one test."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def stored_rows(dtype: torch.dtype, rows: int, channels: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    if dtype == torch.int8:
        return torch.from_numpy(rng.integers(-127, 128, (rows, channels), dtype=np.int8))
    values = rng.standard_normal((rows, channels)).astype(np.float32) * 3
    values[:, ::7] = rng.uniform(-7e-5, 7e-5, values[:, ::7].shape)   # float16 subnormals (< 6.1e-5) too
    return torch.from_numpy(values).to(dtype)


def float64(rows: torch.Tensor) -> np.ndarray:
    return rows.to(torch.float64).numpy()


def close_to(out: np.ndarray, exact: np.ndarray, scale: np.ndarray) -> None:
    """float32 sums of C products: within 1e-5 of the sum of the products' magnitudes."""
    assert np.all(np.abs(out - exact) <= 1e-5 * scale + 1e-30), np.max(np.abs(out - exact) / scale)


@pytest.mark.parametrize("dtype", [torch.float16, torch.int8, torch.float32], ids=str)
@pytest.mark.parametrize("rows", [1, 3, 4, 7, 130])
@pytest.mark.parametrize("k", [1, 3, 4, 5, 9])
def test_rows_dots_equal_float64_products_and_squared_norms(dtype, rows, k):
    x_rc = stored_rows(dtype, rows, 37, seed=rows * 10 + k)
    q_kc = np.random.default_rng(k).standard_normal((k, 37)).astype(np.float32)
    out_kr = np.full((k, rows), np.nan, np.float32)
    sq_r = np.full(rows, np.nan, np.float32)
    kernels.rows_dots(kernels.stored_view(x_rc), q_kc, out_kr, sq_r)
    x = float64(x_rc)
    close_to(out_kr, q_kc.astype(np.float64) @ x.T, np.abs(q_kc).astype(np.float64) @ np.abs(x).T)
    close_to(sq_r, (x * x).sum(axis=1), (x * x).sum(axis=1))


def test_float16_values_are_read_exactly_including_subnormals_and_signs():
    values = torch.tensor([[0.0, -0.0, 6e-8, -6e-8, 6.1e-5, 65504.0, -65504.0, 1 / 3]], dtype=torch.float16)
    for column in range(values.shape[1]):
        one_hot = np.zeros((1, values.shape[1]), np.float32)
        one_hot[0, column] = 1
        out = np.empty((1, 1), np.float32)
        kernels.rows_dots(kernels.stored_view(values), one_hot, out)
        assert out[0, 0] == values[0, column].item(), column


@pytest.mark.parametrize("converter", ["_half_bits_to_f32", "_half_bits_to_f32_by_integers"])
def test_both_float16_conversions_give_numpys_value_for_every_bit_pattern(converter):
    """The F16C instruction and the integer steps (targets without F16C): all 65,536 patterns, NaNs
    as NaN (the instruction quiets signalling NaNs, so their payload may differ)."""
    from numba import njit

    convert = getattr(kernels, converter)

    @njit
    def convert_all(bits, out):
        for i in range(bits.shape[0]):
            out[i] = convert(bits[i])

    bits = np.arange(2**16, dtype=np.uint32).astype(np.uint16)
    out = np.empty(2**16, np.float32)
    convert_all(bits, out)
    expected = bits.view(np.float16).astype(np.float32)
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(out), nan)
    np.testing.assert_array_equal(out[~nan].view(np.uint32), expected[~nan].view(np.uint32))  # signs of zeros too


def test_rows_split_over_threads_give_the_same_sums(threads):
    x_rc = stored_rows(torch.float16, 5003, 64, seed=1)
    q_kc = np.random.default_rng(2).standard_normal((6, 64)).astype(np.float32)
    results = []
    for count in (1, 3):
        threads(count)
        out_kr, sq_r = np.full((6, 5003), np.nan, np.float32), np.full(5003, np.nan, np.float32)
        kernels.rows_dots(kernels.stored_view(x_rc), q_kc, out_kr, sq_r)
        results.append((out_kr, sq_r))
    assert len(kernels._parts(np.ones(1251), 256)) == 3          # the second run did split
    np.testing.assert_array_equal(results[0][0], results[1][0])  # every row once, summed the same way
    np.testing.assert_array_equal(results[0][1], results[1][1])


@pytest.mark.parametrize("count", [1, 3])
def test_cells_dots_multiply_each_cell_with_its_own_rows(threads, count):
    """Cells in any order, with 0 to 6 query rows each, images ``first:last`` of a block."""
    threads(count)
    feats_lsc = stored_rows(torch.float16, 9 * 300, 40, seed=3).reshape(9, 300, 40)
    cell_i = np.array([4, 0, 8, 2, 7], np.int64)
    sizes = [3, 6, 0, 1, 5]
    row_start = np.cumsum([0] + sizes[:-1]).astype(np.int64)
    row_stop = row_start + sizes
    q_rc = np.random.default_rng(4).standard_normal((sum(sizes), 40)).astype(np.float32)
    first, last = 17, 290
    out_rs = np.full((sum(sizes), last - first), np.nan, np.float32)
    kernels.cells_dots(kernels.stored_view(feats_lsc), first, last, cell_i, row_start, row_stop, q_rc, out_rs)
    for cell, a, b in zip(cell_i, row_start, row_stop):
        x = float64(feats_lsc[cell, first:last])
        q = q_rc[a:b].astype(np.float64)
        close_to(out_rs[a:b], q @ x.T, np.abs(q) @ np.abs(x).T)
    assert not np.isnan(out_rs).any()


def test_inf_and_nan_in_stored_rows_are_not_hidden():
    x_rc = stored_rows(torch.float16, 6, 20, seed=5)
    x_rc[1, 3], x_rc[4, 0] = float("inf"), float("nan")
    q_kc = np.abs(np.random.default_rng(6).standard_normal((2, 20))).astype(np.float32) + 0.1
    out_kr, sq_r = np.empty((2, 6), np.float32), np.empty(6, np.float32)
    kernels.rows_dots(kernels.stored_view(x_rc), q_kc, out_kr, sq_r)
    assert np.isposinf(out_kr[:, 1]).all() and np.isposinf(sq_r[1])
    assert np.isnan(out_kr[:, 4]).all() and np.isnan(sq_r[4])
    assert np.isfinite(np.delete(out_kr, [1, 4], axis=1)).all()


def test_only_float16_int8_and_float32_rows_are_read():
    with pytest.raises(TypeError, match="bfloat16"):
        kernels.stored_view(torch.zeros(2, 3, dtype=torch.bfloat16))


def _run_python(code: str, **env: str) -> str:
    import os
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


_SEARCH_FLOAT16 = (
    "import numpy as np; from featurelens.search import kernels, load_features, query_from_features, search_features; "
    "rng = np.random.default_rng(0); f = rng.standard_normal((9, 5, 5, 300)).astype(np.float16); "
    "m = np.zeros((5, 5)); m[1, 2] = 1; q = query_from_features(f[0].astype(np.float32), m, model='a', layer='b'); "
    "r = search_features(load_features(f, 'cpu'), q, top_k=9, include_self=True, device='cpu'); "
    "print(kernels._NATIVE_HALF, np.round(r.best_scores_n, 5).tolist())")


def test_a_cpu_without_f16c_searches_float16_by_integer_steps():
    """Numba told to compile for a generic x86 CPU (as on CPUs without F16C, or for caches shared
    between machines): the float16 instruction is not there, and calling LLVM's helper instead would
    abort the process. The search runs and scores as on this CPU."""
    native, scores = _run_python(_SEARCH_FLOAT16).split(" ", 1)
    generic, generic_scores = _run_python(_SEARCH_FLOAT16, NUMBA_CPU_NAME="generic").split(" ", 1)
    assert generic == "False"
    assert generic_scores == scores


def test_fork_and_numba_disable_jit_leave_search_working():
    """A child forked after threaded kernels ran gets a fresh pool (the parent's threads are not in
    it); with ``NUMBA_DISABLE_JIT=1`` (debugging) the kernels step aside for torch."""
    code = ("import os, numpy as np, torch; from featurelens.search import kernels; torch.set_num_threads(2); "
            "x = kernels.stored_view(torch.ones(4096, 8).half()); out = np.empty((1, 4096), np.float32); "
            "q = np.ones((1, 8), np.float32); kernels.rows_dots(x, q, out); pid = os.fork()\n"
            "if pid == 0:\n    kernels.rows_dots(x, q, out); os._exit(0 if out.min() == 8 else 1)\n"
            "print(os.waitpid(pid, 0)[1])")
    assert _run_python(code) == "0"
    no_jit = _run_python(_SEARCH_FLOAT16, NUMBA_DISABLE_JIT="1")
    assert no_jit.split(" ", 1)[1] == _run_python(_SEARCH_FLOAT16).split(" ", 1)[1]


def test_without_a_writable_cache_folder_the_kernels_compile_per_process():
    """A read-only install with no writable home: Numba finds nowhere to keep its cache (simulated by
    allowing only the zip-import locator); the import must not fail, the kernels still compute."""
    code = ("import numpy as np, torch; from featurelens.search import kernels; "
            "out = np.zeros((1, 5), np.float32); "
            "kernels.rows_dots(kernels.stored_view(torch.full((5, 8), 0.5).half()), np.ones((1, 8), np.float32), out); "
            "print(out.tolist())")
    assert _run_python(code, NUMBA_CACHE_LOCATOR_CLASSES="ZipCacheLocator") == str([[4.0] * 5])
