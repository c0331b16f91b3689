"""Tests of crossjax.mitigation: column rearrangement on the exact circuit, and WCT."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from crossjax import mitigation as M
from crossjax.circuit import Parasitics, effective_conductance

PAR = Parasitics(r_wire_row=2.0, r_wire_col=2.0, r_source=10.0, r_sink=10.0)
G_MIN, G_MAX = 1e-6, 1e-4  # 1 MOhm .. 10 kOhm


def _nodal_geff(G, r_row, r_col, r_src, r_snk):
    """Independent dense nodal-analysis reference of G_eff (docs/circuit.md conventions)."""
    R, C = G.shape
    n = 2 * R * C
    A = np.zeros((n, n))
    row = lambda i, j: i * C + j
    col = lambda i, j: R * C + i * C + j

    def link(a, b, g):
        A[a, a] += g
        A[b, b] += g
        A[a, b] -= g
        A[b, a] -= g

    B = np.zeros((n, R))
    for i in range(R):
        A[row(i, 0), row(i, 0)] += 1 / (r_src + r_row)
        B[row(i, 0), i] = 1 / (r_src + r_row)
        for j in range(C):
            link(row(i, j), col(i, j), G[i, j])
            if j:
                link(row(i, j - 1), row(i, j), 1 / r_row)
            if i:
                link(col(i - 1, j), col(i, j), 1 / r_col)
    for j in range(C):
        A[col(R - 1, j), col(R - 1, j)] += 1 / (r_col + r_snk)
    v = np.linalg.solve(A, B)  # node voltages for V = e_i
    return np.stack([v[col(R - 1, j)] for j in range(C)], 1) / (r_col + r_snk)


def _tile(seed, R, C):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((R, C)) * rng.uniform(0.1, 1.0, C) ** 2  # columns of unequal weight
    return M.differential_conductances(jnp.asarray(W), np.abs(W).max(), G_MIN, G_MAX)


def test_circuit_matches_independent_nodal_reference():
    Gp, _ = _tile(0, 4, 5)
    np.testing.assert_allclose(
        effective_conductance(Gp, PAR), _nodal_geff(np.asarray(Gp), 2.0, 2.0, 10.0, 10.0), rtol=1e-10
    )


def test_rearrange_columns_is_blockwise_and_undone_exactly():
    rng = np.random.default_rng(1)
    W = rng.standard_normal((7, 11))
    Wp, perm = M.rearrange_columns(jnp.asarray(W), 4)
    perm = np.asarray(perm)
    assert sorted(perm) == list(range(11)) and (perm // 4 == np.arange(11) // 4).all()
    for b in range(3):
        blk = perm[4 * b : 4 * b + 4]
        np.testing.assert_array_equal(
            blk, 4 * b + np.argsort(-np.abs(W[:, 4 * b : 4 * b + 4]).sum(0), kind="stable")[: len(blk)]
        )
    x = rng.standard_normal((3, 7))
    np.testing.assert_allclose(M.restore_outputs(x @ np.asarray(Wp), perm), x @ W, rtol=1e-12)
    G = jnp.asarray(rng.random((2, 5, 6)))
    o = np.asarray(M.column_order(G))
    np.testing.assert_array_equal(o, np.argsort(-np.asarray(G).sum(1), axis=-1, kind="stable"))


@pytest.mark.slow
def test_rearrangement_beats_random_order_on_exact_circuit():
    """Sorted columns vs 32 random orders per tile, 4 tiles of 16 x 16, differential pair."""
    R = C = 16
    tiles = [_tile(s, R, C) for s in range(4)]
    Gp = jnp.stack([t[0] for t in tiles])
    Gn = jnp.stack([t[1] for t in tiles])
    perm = M.column_order(Gp + Gn)  # (4, C)
    take = jax.vmap(lambda G, p: G[:, p])
    e_sorted = M.ir_drop_error(take(Gp, perm), PAR, take(Gn, perm))  # (4,)
    rnd = jax.vmap(lambda k: jax.random.permutation(k, C))(jax.random.split(jax.random.key(0), 32))
    Gp_r = jax.vmap(lambda p: Gp[..., p])(rnd)  # (32, 4, R, C)
    Gn_r = jax.vmap(lambda p: Gn[..., p])(rnd)
    e_rand = np.asarray(M.ir_drop_error(Gp_r, PAR, Gn_r))
    e_asc = M.ir_drop_error(take(Gp, perm[:, ::-1]), PAR, take(Gn, perm[:, ::-1]))
    ratio = np.asarray(e_sorted) / e_rand.mean(0)
    print(
        f"rearrangement: sorted/random-mean IR error per tile {np.round(ratio, 3)}, sorted/ascending {np.round(np.asarray(e_sorted / e_asc), 3)}"
    )
    assert (ratio < 0.9).all(), ratio
    assert (np.asarray(e_sorted)[None] <= e_rand).all()  # better than every random order
    assert (np.asarray(e_sorted) < np.asarray(e_asc)).all()


@pytest.mark.slow
def test_optimized_order_on_exact_circuit_vs_brute_force():
    Gp, Gn = _tile(3, 6, 5)
    allp = np.array(list(itertools.permutations(range(5))))
    e_all = np.asarray(M.ir_drop_error(jnp.moveaxis(Gp[:, allp], 0, -2), PAR, jnp.moveaxis(Gn[:, allp], 0, -2)))
    s = M.column_order(Gp + Gn)
    worst = jnp.asarray(allp[np.argmax(e_all)])  # also start from the worst order
    perms, errs = jax.vmap(lambda i: M.optimize_column_order(Gp, PAR, Gn, init=i))(jnp.stack([s, worst]))
    perm, e_opt, e_w = perms[0], errs[0], errs[1]
    np.testing.assert_allclose(e_opt, M.ir_drop_error(Gp[:, perm], PAR, Gn[:, perm]), rtol=1e-12)
    e_sorted = M.ir_drop_error(Gp[:, s], PAR, Gn[:, s])
    assert e_opt <= e_sorted
    assert e_opt <= e_all.min() * (1 + 1e-9)  # reaches the global optimum here
    print(
        f"orders of a 6x5 tile: sorted/best-of-120 {float(e_sorted / e_all.min()):.6f}, "
        f"mean/best {e_all.mean() / e_all.min():.3f}, worst/best {e_all.max() / e_all.min():.3f}, "
        f"greedy-from-worst/best {float(e_w / e_all.min()):.6f}"
    )
    assert e_w < 0.9 * e_all.max()


def test_wct_penalty_matches_numpy_and_grad():
    rng = np.random.default_rng(4)
    W = rng.standard_normal((6, 5))
    ref = (np.maximum(np.abs(W) / 2.0 - 0.4, 0) ** 2).sum()
    np.testing.assert_allclose(M.wct_penalty(jnp.asarray(W), 2.0, 0.4), ref, rtol=1e-12)
    g = np.asarray(jax.grad(M.wct_penalty)(jnp.asarray(W), 2.0, 0.4))
    np.testing.assert_allclose(g, 2 * np.maximum(np.abs(W) / 2 - 0.4, 0) * np.sign(W) / 2, rtol=1e-12)
    with pytest.raises(ValueError, match="threshold"):
        M.wct_penalty(jnp.asarray(W), 1.0, 1.5)
    with pytest.raises(ValueError, match="strength"):
        M.add_weight_constraint(-1.0)


@pytest.mark.slow
def test_wct_training_lowers_conductance_and_ir_drop():
    """Fit a linear map with and without WCT (same steps, pinned w_max): more low-G cells, less IR error."""
    R = C = 16
    rng = np.random.default_rng(5)
    W0 = jnp.asarray(rng.standard_normal((R, C)) * 0.5)
    X = jnp.asarray(rng.standard_normal((64, R)))
    Y = X @ W0
    w_max = float(jnp.max(jnp.abs(W0)))

    def train(tx, steps=30):
        params = {"w": W0}
        state = tx.init(params)
        loss = lambda p: jnp.mean((X @ p["w"] - Y) ** 2)

        @jax.jit
        def step(params, state):
            u, state = tx.update(jax.grad(loss)(params), state, params)
            return optax.apply_updates(params, u), state

        for _ in range(steps):
            params, state = step(params, state)
        return params["w"], float(loss(params))

    w_plain, l_plain = train(optax.sgd(1e-2))
    w_wct, l_wct = train(optax.chain(M.add_weight_constraint(20.0, 0.3), optax.sgd(1e-2)))
    f_plain = float(M.low_conductance_fraction(w_plain, w_max, 0.4))
    f_wct = float(M.low_conductance_fraction(w_wct, w_max, 0.4))
    assert f_wct > f_plain + 0.05, (f_plain, f_wct)
    e = [
        float(
            M.ir_drop_error(
                *M.differential_conductances(w, w_max, G_MIN, G_MAX)[:1],
                PAR,
                M.differential_conductances(w, w_max, G_MIN, G_MAX)[1],
            )
        )
        for w in (w_plain, w_wct)
    ]
    assert e[1] < e[0], e
    print(
        f"WCT: low-G fraction {f_plain:.3f} -> {f_wct:.3f}, IR err {e[0]:.3e} -> {e[1]:.3e}, loss {l_plain:.2e} -> {l_wct:.2e}"
    )
    # the hard projection keeps |w| <= fraction * w_max exactly
    tx = optax.chain(optax.sgd(1.0), M.project_weights(0.5))
    params = {"w": W0}
    st = tx.init(params)
    u, st = tx.update({"w": -jnp.ones_like(W0) * 10}, st, params)
    w = optax.apply_updates(params, u)["w"]
    assert float(jnp.max(jnp.abs(w))) <= 0.5 * w_max * (1 + 1e-12)


@pytest.mark.slow
def test_compare_column_orders_on_a_layer():
    rng = np.random.default_rng(6)
    W = rng.standard_normal((14, 7)) * rng.uniform(0.1, 1.0, 7) ** 2
    out = M.compare_column_orders(jnp.asarray(W), 8, 4, PAR, jax.random.key(1), G_MIN, G_MAX, n_random=6)
    assert out["random"].shape == (6, 4) and out["sorted"].shape == (4,)
    # per tile, the sorted order matches a direct evaluation of that tile (tile (1, 0), zero-padded)
    Wt = np.zeros((8, 4))
    Wt[:6] = W[8:14, 0:4]
    Gp, Gn = M.differential_conductances(jnp.asarray(Wt), np.abs(W).max(), G_MIN, G_MAX)
    s = M.column_order(Gp + Gn)
    np.testing.assert_allclose(out["sorted"][2], M.ir_drop_error(Gp[:, s], PAR, Gn[:, s]), rtol=1e-10)
    assert (np.asarray(out["optimized"]) <= np.asarray(out["sorted"]) * (1 + 1e-12)).all()
    assert float(out["sorted"].sum()) < float(out["random"].sum(1).mean())
