"""Tests of crossjax.pruning against direct NumPy references and exact properties."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from crossjax import pruning as P
from crossjax.tiling import tile, untile


def _w(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _np_tiles(W, R, C):
    K, N = W.shape
    Kt, Nt = math.ceil(K / R), math.ceil(N / C)
    Wp = np.zeros((Kt * R, Nt * C), W.dtype)
    Wp[:K, :N] = W
    return np.stack([np.stack([Wp[a * R : (a + 1) * R, b * C : (b + 1) * C] for b in range(Nt)]) for a in range(Kt)])


def test_tile_layout_matches_slicing():
    W = _w((13, 10))
    T = np.asarray(tile(jnp.asarray(W), 4, 3))
    np.testing.assert_array_equal(T, _np_tiles(W, 4, 3))
    np.testing.assert_array_equal(np.asarray(untile(jnp.asarray(T), 13, 10)), W)
    from crossjax import mapping  # the binding layout of the kernels

    np.testing.assert_array_equal(np.asarray(mapping.tile_weights(jnp.asarray(W), 4, 3)), T)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_magnitude_mask_exact_count_and_threshold(dtype):
    W = _w((20, 7), 1, dtype)
    m = np.asarray(P.magnitude_mask(jnp.asarray(W), 0.3))
    n_pruned = round(0.3 * W.size)
    assert (~m).sum() == n_pruned
    assert np.abs(W[~m]).max() <= np.abs(W[m]).min()
    assert P.magnitude_mask(jnp.asarray(W), 0.0).all()
    assert not P.magnitude_mask(jnp.asarray(W), 1.0).any()


def test_channel_mask_l1_and_next_layer_rows():
    k = _w((3, 3, 4, 6), 2)
    m = np.asarray(P.channel_mask(jnp.asarray(k), 0.5))
    l1 = np.abs(k).reshape(-1, 6).sum(0)
    expect = np.ones(6, bool)
    expect[np.argsort(l1)[:3]] = False
    np.testing.assert_array_equal(m.reshape(-1, 6).all(0), expect)
    np.testing.assert_array_equal(m.reshape(-1, 6).any(0), expect)
    # next conv layer: its Cin axis; next dense layer on a channel-major flatten (P=5 positions)
    nxt = P.input_channel_mask(expect, jnp.zeros((3, 3, 6, 2)))
    np.testing.assert_array_equal(np.asarray(nxt)[1, 2, :, 1], expect)
    rows = np.asarray(P.input_channel_mask(expect, jnp.zeros((30, 4))))
    np.testing.assert_array_equal(rows[:, 0], np.repeat(expect, 5))
    with pytest.raises(ValueError, match="multiple"):
        P.input_channel_mask(expect, jnp.zeros((31, 4)))


def _np_group_reference(W, R, C, s, axes):
    T = _np_tiles(W, R, C)
    valid = _np_tiles(np.ones_like(W), R, C)
    cnt = valid.sum(axes, keepdims=True)
    score = np.sqrt((T**2).sum(axes, keepdims=True) / np.maximum(cnt, 1))
    score = np.where(cnt > 0, score, np.inf).ravel()
    n = round(s * int((cnt > 0).sum()))
    keep = np.ones(score.size, bool)
    keep[np.argsort(score, kind="stable")[:n]] = False
    full = np.broadcast_to(keep.reshape(np.broadcast_shapes(cnt.shape)), T.shape)
    Kt, Nt = T.shape[:2]
    return full.transpose(0, 2, 1, 3).reshape(Kt * R, Nt * C)[: W.shape[0], : W.shape[1]]


@pytest.mark.parametrize(
    "fn,axes", [(P.crossbar_column_mask, (2,)), (P.crossbar_row_mask, (3,)), (P.tile_mask, (2, 3))]
)
def test_crossbar_group_masks_match_numpy(fn, axes):
    W = _w((19, 14), 3)
    m = np.asarray(fn(jnp.asarray(W), 8, 4, 0.4))
    np.testing.assert_array_equal(m, _np_group_reference(W, 8, 4, 0.4, axes))
    # structure: every group is entirely kept or entirely pruned
    Tm = _np_tiles(m.astype(int), 8, 4) + (1 - _np_tiles(np.ones_like(m, int), 8, 4)) * -1
    for g in np.moveaxis(Tm, list(axes), list(range(4 - len(axes), 4))).reshape(-1, *[Tm.shape[a] for a in axes]):
        vals = set(np.unique(g)) - {-1}
        assert len(vals) <= 1


def test_xcs_prunes_exact_fraction_of_columns_jit():
    W = jnp.asarray(_w((32, 16), 4))
    m = jax.jit(P.crossbar_column_mask, static_argnums=(1, 2))(W, 8, 8, 0.25)
    col_kept = np.asarray(tile(m, 8, 8)).all(axis=2)  # (4, 2, 8)
    assert (~col_kept).sum() == 16  # 25 % of 64 crossbar columns


def test_group_lasso_matches_numpy_and_grad_finite():
    W = _w((10, 7), 5)
    T = _np_tiles(W, 4, 3)
    V = _np_tiles(np.ones_like(W), 4, 3)
    ref = (np.sqrt(V.sum(2)) * np.sqrt((T**2).sum(2))).sum()
    np.testing.assert_allclose(P.group_lasso(jnp.asarray(W), 4, 3, "column"), ref, rtol=1e-12)
    ref_row = (np.sqrt(V.sum(3)) * np.sqrt((T**2).sum(3))).sum()
    np.testing.assert_allclose(P.group_lasso(jnp.asarray(W), 4, 3, "row"), ref_row, rtol=1e-12)
    np.testing.assert_allclose(
        P.group_lasso(jnp.asarray(W), group="channel"), np.sqrt(10) * np.linalg.norm(W, axis=0).sum(), rtol=1e-12
    )
    Wz = jnp.asarray(W).at[:4, :3].set(0.0)  # one whole tile zero
    g = jax.grad(P.group_lasso)(Wz, 4, 3, "tile")
    assert np.isfinite(np.asarray(g)).all()
    with pytest.raises(ValueError, match="group"):
        P.group_lasso(jnp.asarray(W), 4, 3, "columns")


def test_bad_input_raises():
    with pytest.raises(ValueError, match="sparsity"):
        P.magnitude_mask(jnp.ones((3, 3)), 1.5)
    with pytest.raises(ValueError, match="rows"):
        P.crossbar_column_mask(jnp.ones((3, 3)), 0, 2, 0.1)
    with pytest.raises(ValueError, match="2-D"):
        P.crossbar_row_mask(jnp.ones((3, 3, 2)), 2, 2, 0.1)


def test_hoyer_square_counts_equal_magnitude_nonzeros():
    v = np.zeros(16)
    v[[1, 5, 9]] = [2.0, -2.0, 2.0]
    np.testing.assert_allclose(P.hoyer_square(jnp.asarray(v), eps=0.0), 3.0)
    x = _w((5, 16), 6)
    np.testing.assert_allclose(
        P.hoyer_square(jnp.asarray(x), axis=1), np.abs(x).sum(1) ** 2 / ((x**2).sum(1) + 1e-8), rtol=1e-12
    )


def test_dub_regularizer_one_sided_variance_and_gradient():
    W = _w((8, 6), 7)
    R, C = 4, 3
    T = _np_tiles(W, R, C)
    H = np.abs(T).sum(2) ** 2 / ((T**2).sum(2) + 1e-8)  # (2, 2, 3)
    m = H.mean(-1, keepdims=True)
    ref = (np.where(H > m, (H - m) ** 2, 0.0) / (C - 1)).sum()
    val, g = jax.value_and_grad(P.dub_regularizer)(jnp.asarray(W), R, C)
    np.testing.assert_allclose(val, ref, rtol=1e-12)
    # only columns above their tile mean receive gradient
    G = _np_tiles(np.asarray(g), R, C)
    active = np.abs(G).sum(2) > 0
    np.testing.assert_array_equal(active, H > m)
    # gradient descent on the regularizer alone lowers the Hoyer spread
    step = jax.jit(lambda w: w - 0.05 * jax.grad(P.dub_regularizer)(w, R, C))
    Wj = jnp.asarray(W)
    for _ in range(50):
        Wj = step(Wj)
    assert P.dub_regularizer(Wj, R, C) < 0.5 * val


def test_dub_levels_and_snapping_rule():
    np.testing.assert_allclose(P.dub_levels(64), 1 - 2.0 ** -np.arange(7))
    R = 16
    # densest column zeros z -> s = z/16; levels 0, .5, .75, .875, .9375
    cases = {0: 0, 3: 0, 4: 0, 5: 1, 8: 1, 10: 1, 11: 2, 12: 2, 13: 2, 14: 3, 15: 4, 16: 4}
    for z, k in cases.items():
        W = np.ones((R, 3))
        W[:z, 0] = 0.0  # column 0 is the densest: exactly z zeros
        W[:, 1:] = 0.0
        W[-1, 1:] = 1.0  # other columns sparser (15 zeros)
        level = int(P.dub_tile_levels(jnp.asarray(W), R, 3)[0, 0])
        s = z / R
        L = 1 - 2.0 ** -np.arange(5)
        kd = np.searchsorted(L, s, side="right") - 1
        ku = min(kd + 1, 4)
        k_ref = ku if s > (L[kd] + L[ku]) / 2 else kd
        assert level == k == k_ref, (z, level, k, k_ref)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dub_project_balanced_columns_and_levels(dtype):
    R, C = 16, 4
    rng = np.random.default_rng(8)
    W = rng.standard_normal((40, 10)).astype(dtype)  # ragged in both directions
    W[rng.random(W.shape) < 0.6] = 0.0  # make it sparse so levels > 0 appear
    mask, level = P.dub_project(jnp.asarray(W), R, C)
    mask, level = np.asarray(mask), np.asarray(level)
    assert level.shape == (3, 3) and level.max() >= 1
    Wm = np.where(mask, W, 0)
    Tm = _np_tiles(mask.astype(int), R, C)
    V = _np_tiles(np.ones_like(W, int), R, C)
    TW = _np_tiles(np.abs(W), R, C)
    for a in range(3):
        for b in range(3):
            cols = V[a, b].any(0)
            keep = min(R >> level[a, b], V[a, b, :, 0].sum())
            counts = Tm[a, b][:, cols].sum(0)
            assert np.var(counts) == 0 and (counts == keep).all()  # balanced, exactly the level
            # kept entries are the largest |w| of their column
            for j in np.flatnonzero(cols):
                kept, dropped = (
                    TW[a, b, Tm[a, b, :, j] == 1, j],
                    TW[a, b, (Tm[a, b, :, j] == 0) & (V[a, b, :, j] == 1), j],
                )
                if dropped.size and kept.size:
                    assert dropped.max() <= kept.min()
    # snapping is a projection: re-snapping the pruned weights reaches the same levels
    if np.all(np.abs(Wm)[mask] > 0):
        m2, l2 = P.dub_project(jnp.asarray(Wm), R, C)
        assert (np.asarray(l2) >= level).all()


def test_masks_exact_through_optimizer_steps():
    W = jnp.asarray(_w((12, 8), 9))
    params = {"w": W, "b": jnp.ones(8)}
    masks = {"w": P.crossbar_column_mask(W, 4, 4, 0.5), "b": None}
    params = P.apply_masks(params, masks)
    tx = optax.chain(optax.add_decayed_weights(1e-2), optax.adam(1e-1), P.masked_updates(masks))
    state = tx.init(params)

    def loss(p):
        return jnp.sum((jnp.ones((3, 12)) @ p["w"] + p["b"] - 5.0) ** 2)

    for _ in range(5):
        g = jax.grad(loss)(params)
        upd, state = tx.update(g, state, params)
        params = optax.apply_updates(params, upd)
    w = np.asarray(params["w"])
    m = np.asarray(masks["w"])
    assert (w[~m] == 0.0).all() and (w[m] != 0.0).all()
    assert not np.allclose(w[m], np.asarray(W)[m])  # the kept weights did train


def test_crossbar_report_counts():
    R, C = 4, 4
    W = np.zeros((10, 9))
    W[0, 0] = 1.0  # tile (0,0) col 0
    W[1, 3] = 2.0  # tile (0,0) col 3
    W[2, 5] = 1.0  # tile (0,1)
    W[9, 8] = 1.0  # tile (2,2)
    r = P.crossbar_report(jnp.asarray(W), R, C).as_dict()
    assert r["tiles_dense"] == 9 and r["tiles_nonempty"] == 3
    assert r["columns_dense"] == 27 and r["columns_nonempty"] == 4
    assert r["nonzeros"] == 4 and r["sparsity"] == pytest.approx(1 - 4 / 90)
    assert r["tiles_sparse"] == 2  # row block 0: 3 cols -> 1; block 2: 1 col -> 1
    assert r["compression"] == pytest.approx(4.5)


def test_compaction_roundtrip_and_counts():
    R, C = 4, 3
    W = _w((11, 13), 10)
    W[:, [1, 4, 5, 6, 11]] = 0.0
    W[4:8, 0] = 0.0
    comp = P.compact_columns(jnp.asarray(W), R, C)
    x = _w((5, 11), 11)
    np.testing.assert_allclose(P.compacted_matmul(jnp.asarray(x), comp, 13), x @ W, rtol=1e-12)
    rep = P.crossbar_report(jnp.asarray(W), R, C)
    assert int(comp.tiles_used.sum()) == int(rep.tiles_sparse)
    # row block 1 lost column 0 too: 7 non-empty columns -> 3 tiles; blocks 0, 2: 8 -> 3
    np.testing.assert_array_equal(np.asarray(comp.tiles_used), [3, 3, 3])
    T = np.asarray(comp.tiles)
    for a, u in enumerate(np.asarray(comp.tiles_used)):
        assert not T[a, u:].any()


class _Net(nnx.Module):
    def __init__(self, rngs):
        self.conv = nnx.Conv(3, 6, (3, 3), rngs=rngs)
        self.fc = nnx.Linear(24, 5, rngs=rngs)


@pytest.mark.parametrize("method", P.METHODS)
@pytest.mark.slow
def test_model_wrappers(method):
    model = _Net(nnx.Rngs(0))
    masks = P.prune_model(model, method, 8, 4, sparsity=0.5)
    P.apply_model_masks(model, masks)
    st = nnx.state(model, nnx.Param)
    k = np.asarray(st["conv"]["kernel"][...])
    mk = np.asarray(masks["conv"]["kernel"][...])
    assert (k[~mk] == 0).all() and np.asarray(masks["fc"]["bias"][...]).all()
    rep = P.model_report(model, 8, 4)
    assert set(rep["layers"]) == {"conv/kernel", "fc/kernel"}
    if method != "dub":
        assert rep["total"]["sparsity"] == pytest.approx(0.5, abs=0.1)
    flat = P.flatten_kernel(jnp.asarray(k))
    assert rep["layers"]["conv/kernel"]["nonzeros"] == int((np.asarray(flat) != 0).sum())
    if method == "column":  # XCS on the flattened conv layout: whole crossbar columns
        cols = np.asarray(tile(flat != 0, 8, 4)).any(2)
        assert cols.sum() == rep["layers"]["conv/kernel"]["columns_nonempty"]


@pytest.mark.slow  # 12 s of compiles; the per-matrix regularizer gradients stay in the default run
def test_model_regularizers_grad():
    model = _Net(nnx.Rngs(1))
    st = nnx.state(model, nnx.Param)
    fn = jax.jit(jax.grad(lambda p: P.model_dub_regularizer(p, 8, 4) + P.model_group_lasso(p, 8, 4)))
    reg = fn(st)
    k = np.asarray(st["fc"]["kernel"][...])

    gk = jax.grad(lambda w: P.dub_regularizer(w, 8, 4) + P.group_lasso(w, 8, 4))(jnp.asarray(k))
    np.testing.assert_allclose(np.asarray(reg["fc"]["kernel"][...]), gk, rtol=1e-5, atol=1e-7)
    assert np.isfinite(np.asarray(reg["conv"]["kernel"][...])).all()
    assert np.asarray(reg["fc"]["bias"][...]).shape == (5,) and not np.asarray(reg["fc"]["bias"][...]).any()


class _CrossbarNet(nnx.Module):
    def __init__(self, rngs):
        from crossjax.layers import CrossbarConv, CrossbarLinear

        self.conv = CrossbarConv(2, 8, (3, 3), rngs=rngs)
        self.fc = CrossbarLinear(8 * 16, 16, rngs=rngs)
        self.head = nnx.Linear(16, 3, rngs=rngs)  # digital: never pruned

    def __call__(self, x):
        h = jax.nn.relu(self.conv(x))
        h = h.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)  # channel-major flatten
        return self.head(jax.nn.relu(self.fc(h)))


@pytest.mark.slow
def test_dub_pipeline_on_crossbar_layers_masks_exact_through_finetuning():
    """D.U.B. regularizer steps -> projection -> fine-tuning with fixed masks (nnx.Optimizer)."""
    model = _CrossbarNet(nnx.Rngs(0))
    x = jnp.asarray(_w((4, 4, 4, 2), 12), jnp.float32)
    y = jnp.asarray([0, 1, 2, 1])
    layers = P.crossbar_layer_paths(model)
    assert layers == {("conv",), ("fc",)}

    def loss(m, lam):
        logits = m(x)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return ce + lam * P.model_dub_regularizer(nnx.state(m, nnx.Param), 8, 4, layers=layers)

    opt = nnx.Optimizer(model, optax.sgd(1e-2), wrt=nnx.Param)

    @nnx.jit
    def reg_step(m, o):
        o.update(m, nnx.grad(lambda m: loss(m, 1e-3))(m))

    for _ in range(3):
        reg_step(model, opt)
    masks = P.prune_model(model, "dub", 8, 4)
    P.apply_model_masks(model, masks)
    assert np.asarray(masks["head"]["kernel"][...]).all()
    ft = nnx.Optimizer(model, optax.chain(optax.adam(1e-2), P.masked_updates(masks)), wrt=nnx.Param)

    @nnx.jit
    def ft_step(m, o):
        o.update(m, nnx.grad(lambda m: loss(m, 0.0))(m))

    before = {k: np.asarray(v) for k, v in P.crossbar_kernels(nnx.state(model, nnx.Param), layers).items()}
    for _ in range(4):
        ft_step(model, ft)
    after = P.crossbar_kernels(nnx.state(model, nnx.Param), layers)
    for name, k in after.items():
        m = np.asarray(masks[name.split("/")[0]]["kernel"][...])
        k = np.asarray(k)
        assert (k[~m] == 0.0).all() and not np.array_equal(k[m], before[name][m])
        counts = np.asarray(tile(P.flatten_kernel(jnp.asarray(m)), 8, 4)).sum(2)  # (Kt, Nt, C)
        Kn, Nn = P.flatten_kernel(jnp.asarray(k)).shape
        real = np.zeros(counts.shape, bool)
        real.reshape(counts.shape[0], -1)[:, :Nn] = True
        for a in range(counts.shape[0]):
            for b in range(counts.shape[1]):
                assert np.var(counts[a, b][real[a, b]]) == 0.0


def test_prune_channels_with_follower_inputs():
    model = _CrossbarNet(nnx.Rngs(3))
    masks = P.prune_channels(model, 0.25, followers={"conv": "fc"})
    conv_keep = np.asarray(masks["conv"]["kernel"][...]).reshape(-1, 8).all(0)
    assert conv_keep.sum() == 6  # 25 % of 8 filters pruned
    l1 = np.abs(np.asarray(model.conv.kernel[...])).reshape(-1, 8).sum(0)
    np.testing.assert_array_equal(~conv_keep, l1 <= np.sort(l1)[1])
    fc = np.asarray(masks["fc"]["kernel"][...])  # (128, 16): 8 channels x 16 positions
    rows_kept = fc.any(1)
    np.testing.assert_array_equal(rows_kept, np.repeat(conv_keep, 16))
    assert (fc.sum(0) == 6 * 16).sum() == 12  # 25 % of fc outputs pruned too
    assert np.asarray(masks["head"]["kernel"][...]).all()


def test_prune_channels_followers_in_a_sequence_of_layers():
    """Layers held in a list (``models.MLP``) are named by their '/'-joined paths, as
    ``crossbar_layer_paths`` spells them; a path that names no layer is a ValueError."""
    from crossjax import models

    model = models.MLP(8, (6, 5), 3, rngs=nnx.Rngs(0))
    assert ("layers", "0") in P.crossbar_layer_paths(model)
    masks = P.prune_channels(model, 0.5, followers={"layers/0": "layers/1"})
    kept = np.asarray(masks["layers"][0]["kernel"][...]).any(0)  # the first layer's kept outputs
    assert kept.sum() == 3
    np.testing.assert_array_equal(np.asarray(masks["layers"][1]["kernel"][...]).any(1), kept)
    with pytest.raises(ValueError, match="layers/9"):
        P.prune_channels(model, 0.5, followers={"layers/9": "layers/1"})
