"""Network surgery of the seed studies on MLP and VGG (crossjax.paper_studies.tasks), and a
seed study on (mocked) CIFAR-10 with VGG11."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from crossjax import models, pruning
from crossjax.paper_studies import tasks

TILE = 16


def _trained_like(model, seed=0):
    """Give every parameter and batch-norm statistic non-trivial values (an untrained net has
    unit BN scales and zero means, which would hide permutation and scaling mistakes)."""
    rng = np.random.default_rng(seed)
    for path, var in nnx.iter_graph(model):
        if isinstance(var, nnx.BatchNorm):
            c = var.scale[...].shape[0]
            var.scale[...] = jnp.asarray(rng.uniform(0.5, 1.5, c), var.scale[...].dtype)
            var.bias[...] = jnp.asarray(rng.normal(size=c) * 0.1, var.bias[...].dtype)
            var.mean[...] = jnp.asarray(rng.normal(size=c) * 0.1, var.mean[...].dtype)
            var.var[...] = jnp.asarray(rng.uniform(0.5, 2.0, c), var.var[...].dtype)
    return model


def _nets():
    mlp = models.MLP(20, hidden=(40, 24), num_classes=5, param_dtype=jnp.float64, rngs=nnx.Rngs(0))
    vgg = _trained_like(models.vgg11(5, width=0.0625, param_dtype=jnp.float64, rngs=nnx.Rngs(1)))
    x_mlp = jnp.asarray(np.random.default_rng(2).uniform(size=(6, 20)))
    x_vgg = jnp.asarray(np.random.default_rng(3).uniform(size=(6, 32, 32, 3)))
    return [(mlp, x_mlp), (vgg, x_vgg)]


def _logits(model, x):
    m = nnx.clone(model)
    m.eval()
    return m(x)


@pytest.mark.parametrize("net", [0, 1], ids=["mlp", "vgg11"])
@pytest.mark.slow
def test_rearrange_and_normalize_keep_the_network_function(net):
    model, x = _nets()[net]
    ref = _logits(model, x)
    moved = tasks.rearrange(nnx.clone(model), TILE)
    np.testing.assert_allclose(_logits(moved, x), ref, rtol=1e-10, atol=1e-12)
    assert any(
        not np.array_equal(a.layer.kernel[...], b.layer.kernel[...])
        for a, b in zip(tasks.chain(moved)[:-1], tasks.chain(model)[:-1])
    )
    scaled = tasks.normalize_scales(nnx.clone(model))
    assert all(np.isclose(float(jnp.max(jnp.abs(W))), 1.0) for W in tasks.kernels(scaled))
    out = _logits(scaled, x)
    ratio = np.asarray(out / ref)  # one positive constant (batch norm's eps aside)
    assert np.all(ratio > 0) and np.allclose(ratio, ratio.flat[0], rtol=1e-3)
    np.testing.assert_array_equal(np.argmax(out, -1), np.argmax(ref, -1))


@pytest.mark.parametrize("net", [0, 1], ids=["mlp", "vgg11"])
@pytest.mark.slow
def test_structured_masks(net):
    model, x = _nets()[net]
    links = tasks.chain(model)
    for method in ("xcs", "xrs"):
        masks = tasks.structured_masks(model, method, 0.5, TILE)
        for link in links[:-1]:
            m = masks
            for k in link.path:
                m = m[k]
            flat = np.asarray(pruning.flatten_kernel(m["kernel"]))
            K, N = flat.shape
            t = np.zeros((-(-K // TILE) * TILE, -(-N // TILE) * TILE), bool)
            t[:K, :N] = flat
            t = t.reshape(-1, TILE, t.shape[1] // TILE, TILE)
            if method == "xcs":  # whole crossbar columns: a column segment is all kept or all pruned
                seg = t.sum(1)  # kept weights per (row tile, column)
                assert np.all((seg == 0) | (seg == TILE) | (seg == K % TILE))
            assert 0.3 < 1 - flat.mean() < 0.7
        assert np.all(
            np.asarray(pruning.crossbar_kernels(masks)["/".join(map(str, links[-1].path)) + "/kernel"])
        )  # the classifier is kept
    # C/F: a pruned channel is exactly 0 downstream (its batch norm goes too)
    masks = tasks.structured_masks(model, "cf", 0.5, TILE)
    pruned = nnx.clone(model)
    pruning.apply_model_masks(pruned, masks)
    first = tasks.chain(pruned)[0]
    keep = np.asarray(first.layer.kernel[...]).reshape(-1, first.layer.kernel[...].shape[-1]).any(0)
    assert 0 < keep.sum() < keep.size
    second = np.asarray(tasks.chain(pruned)[1].layer.kernel[...])
    assert np.all((second[~keep] if second.ndim == 2 else second[:, :, ~keep, :]) == 0)
    if first.bn is not None:
        assert np.all(np.asarray(first.bn.scale[...])[~keep] == 0) and np.all(
            np.asarray(first.bn.bias[...])[~keep] == 0
        )


@pytest.mark.slow  # ~13 s on 2 cores
def test_positions_count_conv_outputs():
    vgg = models.vgg11(10, width=0.0625, rngs=nnx.Rngs(0))
    pos = tasks.positions(vgg, 32)
    assert [pos[f"features/{i}/conv/kernel"] for i in range(8)] == [1024, 256, 64, 64, 16, 16, 4, 4]
    assert set(pos) <= set(pruning.crossbar_kernels(nnx.state(vgg, nnx.Param)))
    assert tasks.positions(models.MLP(4, (3,), 2, rngs=nnx.Rngs(0)), 1) == {}
    with pytest.raises(ValueError, match="MLP and VGG"):
        tasks.chain(models.resnet18(10, width=0.0625, rngs=nnx.Rngs(0)))


@pytest.mark.slow
def test_sparse_crossbars_on_mocked_cifar10(tmp_path):
    import tensorflow_datasets as tfds

    from crossjax import paper_studies

    with tfds.testing.mock_data(num_examples=96):
        res = paper_studies.run("sparse_crossbars", tmp_path, quick=True, progress=False, dataset="cifar10")
    assert res["meta"]["dataset"] == "cifar10" and res["meta"]["model"].startswith("vgg11")
    names = {c["name"] for c in res["configs"]}
    best = res["most_compressed"]
    for v in ("dense", "cf", "xcs", "xrs", f"{best}+rearranged", f"{best}+wct", f"{best}+ft"):
        assert {f"{v}@ideal", f"{v}@wires_x1", f"{v}@wires_x16"} <= names
    assert res["variants"][f"{best}+rearranged"]["max_logit_change"] < 1e-3
    assert res["variants"]["cf"]["crossbars"]["sparsity"] > 0.3
