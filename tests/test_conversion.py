"""crossjax.convert: user-written Flax NNX models on crossbars.

Five models written as a user would (Flax layers only), each converted and
checked: digital mode equals the original bit for bit, the ideal crossbar
equals it to 1e-10 in float64 (folded and tiled read-outs, train and hardware
modes), and a noisy config runs forward, backward and a vmapped Monte Carlo
evaluation. Then every product form on its own against Flax (Conv 1-/2-D with
every padding, dilation, groups; LinearGeneral with batch axes; Einsum
equations), rules, parameter paths, pruning, training and the study.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

import crossjax
from crossjax import conversion, layers, montecarlo, pruning, training
from crossjax.hardware import HardwareConfig

F64 = dict(param_dtype=jnp.float64)
IDEAL = HardwareConfig()
# ADC at 48 bits: the tiled read-out (patches x tiles, per-column conversion), exact to ~1e-14
TILED = HardwareConfig().set({"adc.bits": 48, "dac.range": "max", "array.rows": 16, "array.cols": 8})
NOISY = HardwareConfig().set(
    {
        "device.write_noise.sigma": 0.05,
        "device.read_noise.sigma": 0.02,
        "adc.bits": 6,
        "dac.bits": 6,
        "dac.range": "max",
        "array.rows": 16,
        "array.cols": 16,
    }
)


# --------------------------------------------------------------------------- user-style models
class CNN(nnx.Module):
    """conv - batch norm - relu - dropout, twice; global mean; linear head."""

    def __init__(self, rngs):
        self.conv1 = nnx.Conv(1, 4, (3, 3), **F64, rngs=rngs)
        self.bn1 = nnx.BatchNorm(4, **F64, rngs=rngs)
        self.conv2 = nnx.Conv(4, 8, (3, 3), strides=2, use_bias=False, **F64, rngs=rngs)
        self.bn2 = nnx.BatchNorm(8, **F64, rngs=rngs)
        self.dropout = nnx.Dropout(0.2, rngs=rngs)
        self.head = nnx.Linear(8, 10, **F64, rngs=rngs)

    def __call__(self, x):
        x = self.dropout(nnx.relu(self.bn1(self.conv1(x))))
        x = self.dropout(nnx.relu(self.bn2(self.conv2(x))))
        return self.head(x.mean(axis=(1, 2)))


class GroupedCNN(nnx.Module):
    """A depthwise (groups = channels, dilated, circular padding) and a grouped 1x1 conv."""

    def __init__(self, rngs):
        self.stem = nnx.Conv(1, 8, (3, 3), padding="VALID", **F64, rngs=rngs)
        self.depthwise = nnx.Conv(
            8, 8, (3, 3), feature_group_count=8, kernel_dilation=2, padding="CIRCULAR", **F64, rngs=rngs
        )
        self.grouped = nnx.Conv(8, 12, (1, 1), feature_group_count=4, **F64, rngs=rngs)
        self.head = nnx.Linear(12, 10, **F64, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.stem(x))
        x = nnx.relu(self.grouped(nnx.relu(self.depthwise(x))))
        return self.head(x.mean(axis=(1, 2)))


class Block(nnx.Module):
    def __init__(self, cin, cout, stride, rngs):
        self.a = nnx.Conv(cin, cout, (3, 3), strides=stride, **F64, rngs=rngs)
        self.b = nnx.Conv(cout, cout, (3, 3), **F64, rngs=rngs)
        self.skip = nnx.Conv(cin, cout, (1, 1), strides=stride, **F64, rngs=rngs) if stride > 1 else None

    def __call__(self, x):
        h = self.b(nnx.relu(self.a(x)))
        return nnx.relu(h + (x if self.skip is None else self.skip(x)))


class ResidualNet(nnx.Module):
    def __init__(self, rngs):
        self.stem = nnx.Conv(1, 4, (3, 3), **F64, rngs=rngs)
        self.blocks = nnx.List([Block(4, 4, 1, rngs), Block(4, 8, 2, rngs)])
        self.head = nnx.Linear(8, 10, **F64, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.stem(x))
        for b in self.blocks:
            x = b(x)
        return self.head(x.mean(axis=(1, 2)))


class Encoder(nnx.Module):
    """Tokens from image rows; one pre-norm transformer block with nnx.MultiHeadAttention."""

    def __init__(self, rngs):
        self.embed = nnx.Linear(8, 16, **F64, rngs=rngs)
        self.norm1 = nnx.LayerNorm(16, **F64, rngs=rngs)
        self.attention = nnx.MultiHeadAttention(num_heads=2, in_features=16, decode=False, **F64, rngs=rngs)
        self.norm2 = nnx.LayerNorm(16, **F64, rngs=rngs)
        self.mlp = nnx.Sequential(nnx.Linear(16, 32, **F64, rngs=rngs), nnx.gelu, nnx.Linear(32, 16, **F64, rngs=rngs))
        self.head = nnx.Linear(16, 10, **F64, rngs=rngs)

    def __call__(self, x):
        t = self.embed(x[..., 0])  # (B, 8 rows, 8 pixels) -> (B, 8 tokens, 16)
        t = t + self.attention(self.norm1(t))
        t = t + self.mlp(self.norm2(t))
        return self.head(t.mean(axis=1))


class EinsumNet(nnx.Module):
    """Per-head projections with nnx.Einsum, one of them batched over heads."""

    def __init__(self, rngs):
        self.split = nnx.Einsum("btd,dnh->btnh", (8, 2, 4), (2, 4), **F64, rngs=rngs)
        self.per_head = nnx.Einsum("btnh,nhk->btnk", (2, 4, 3), (2, 3), **F64, rngs=rngs)
        self.merge = nnx.Einsum("btnk,nkc->bc", (2, 3, 10), (10,), **F64, rngs=rngs)

    def __call__(self, x):
        h = nnx.relu(self.split(x[..., 0]))
        return self.merge(nnx.relu(self.per_head(h)))


MODELS = {
    "cnn_bn_dropout": CNN,
    "grouped_cnn": GroupedCNN,
    "residual": ResidualNet,
    "transformer_encoder": Encoder,
    "einsum": EinsumNet,
}


def _images(n=6, seed=1):
    return jax.random.uniform(jax.random.key(seed), (n, 8, 8, 1), jnp.float64)


def _converted(name):
    model = MODELS[name](nnx.Rngs(0))
    model.eval()
    analog = crossjax.convert(model, IDEAL)
    analog.eval()
    return model, analog


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.slow if n in ("grouped_cnn", "residual", "transformer_encoder") else ())
        for n in MODELS
    ],
)  # (slow run: ~6-7 s each)
def test_user_model_digital_is_bit_identical_and_ideal_crossbar_equals_it(name):
    model, analog = _converted(name)
    x = _images()
    ref = model(x)
    assert jnp.array_equal(analog(x), ref)  # digital mode: Flax's own products
    assert layers.crossbar_layers(analog)
    layers.set_mode(analog, "train", IDEAL)  # a fresh sample, folded read
    np.testing.assert_allclose(analog(x), ref, rtol=0, atol=1e-10)
    layers.load_program(analog, layers.program_model(analog, TILED, jax.random.key(0)))
    layers.set_mode(analog, "hardware", TILED)  # programmed tiles, per-column conversion
    np.testing.assert_allclose(analog(x), ref, rtol=0, atol=1e-10)
    layers.set_mode(analog, "digital")
    assert jnp.array_equal(analog(x), ref)


# slow run only (the Einsum model 21 s, the transformer 33 s on 2 cores); the default run draws
# noise through a user model in test_read_noise_of_a_user_model_is_drawn_per_sample_and_batch
NOISY_CASES = [pytest.param(n, marks=pytest.mark.slow) for n in MODELS]


@pytest.mark.parametrize("name", NOISY_CASES)
def test_user_model_noisy_forward_backward_and_vmapped_monte_carlo(name):
    model, analog = _converted(name)
    x = _images(8)
    y = np.asarray(jnp.argmax(model(x), -1))
    trained = nnx.clone(analog)  # train mode updates batch statistics; evaluate the untouched copy
    layers.set_mode(trained, "train", NOISY)
    trained.train()
    out = trained(x)
    assert out.shape == (8, 10) and bool(jnp.isfinite(out).all())
    assert not np.allclose(out, model(x))

    def loss(m):
        return training.cross_entropy_loss(m, x, jnp.asarray(y))

    grads = nnx.grad(loss)(trained)
    flat = [v for _, v in nnx.to_flat_state(nnx.state(grads, nnx.Param))]
    assert all(bool(jnp.isfinite(v[...]).all()) for v in flat)
    assert sum(float(jnp.abs(v[...]).sum()) for v in flat) > 0
    keys = jax.random.split(jax.random.key(3), 3)
    res = montecarlo.evaluate(analog, NOISY, keys, x, y, batch_size=4, progress=False, return_logits=True)
    again = montecarlo.evaluate(analog, NOISY, keys, x, y, batch_size=4, progress=False, return_logits=True)
    assert res["accuracy"].shape == (3,) and np.isfinite(res["accuracy"]).all()
    np.testing.assert_array_equal(res["logits"], again["logits"])  # fixed keys reproduce
    assert not np.allclose(res["logits"][0], res["logits"][1])  # samples differ


def test_read_noise_of_a_user_model_is_drawn_per_sample_and_batch():
    """``layers.run`` reseeds converted layers' streams: the same input in two batches reads differently."""
    model = CNN(nnx.Rngs(0))
    model.eval()
    hw = HardwareConfig().set({"device.read_noise.sigma": 0.05})
    analog = crossjax.convert(model, hw)
    analog.eval()
    x = np.repeat(np.asarray(_images(1)), 4, axis=0)
    y = np.zeros(4, int)
    res = montecarlo.evaluate(
        analog, hw, jax.random.split(jax.random.key(0), 2), x, y, batch_size=2, progress=False, return_logits=True
    )
    logits = res["logits"]
    assert not np.allclose(logits[0, 0], logits[0, 2])  # batch 0 vs batch 1 of sample 0
    assert not np.allclose(logits[0, 0], logits[1, 0])  # sample 0 vs sample 1
    layers.load_program(analog, layers.program_model(analog, hw, jax.random.key(0)))
    layers.set_mode(analog, "hardware")
    a = layers.run(analog, jnp.asarray(x), jax.random.key(5))
    b = layers.run(analog, jnp.asarray(x), jax.random.key(5))
    np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- every product form
CONVS = {
    "2d_same_stride": (dict(in_features=3, out_features=5, kernel_size=(3, 3), strides=2), (2, 7, 7, 3)),
    "2d_valid_rect": (dict(in_features=2, out_features=4, kernel_size=(2, 3), padding="VALID"), (2, 6, 5, 2)),
    "2d_explicit_input_dilation": (
        dict(in_features=3, out_features=4, kernel_size=(3, 2), input_dilation=2, padding=((1, 2), (0, 1))),
        (2, 5, 5, 3),
    ),
    "2d_kernel_dilation_reflect": (
        dict(in_features=2, out_features=2, kernel_size=(3, 3), kernel_dilation=2, padding="REFLECT"),
        (1, 9, 9, 2),
    ),
    "2d_depthwise_circular": (
        dict(in_features=4, out_features=8, kernel_size=(3, 3), feature_group_count=4, padding="CIRCULAR"),
        (2, 6, 6, 4),
    ),
    "2d_masked": (
        dict(
            in_features=2,
            out_features=3,
            kernel_size=(3, 3),
            mask=np.tril(np.ones((3, 3)))[:, :, None, None] * np.ones((1, 1, 2, 3)),
        ),
        (2, 5, 5, 2),
    ),
    "1d_causal": (dict(in_features=3, out_features=4, kernel_size=(3,), padding="CAUSAL"), (2, 9, 3)),
    "1d_unbatched": (dict(in_features=3, out_features=2, kernel_size=(2,), strides=2), (8, 3)),
    "3d": (dict(in_features=2, out_features=3, kernel_size=(2, 2, 2)), (1, 4, 4, 3, 2)),
}


# the plain 2-D geometries are also drawn by the Hypothesis test below: slow run only
COVERED = (
    "2d_same_stride",
    "2d_valid_rect",
    "2d_explicit_input_dilation",
    "3d",
    "2d_depthwise_circular",
)  # (the last two: slow run, ~5 s each)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow if n in COVERED else ()) for n in CONVS])
def test_every_conv_form_equals_flax(name):
    kwargs, shape = CONVS[name]
    conv = nnx.Conv(**kwargs, **F64, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), shape, jnp.float64)
    _check_forms(conv, x)


DENSE = {
    "linear": (lambda r: nnx.Linear(5, 7, **F64, rngs=r), (3, 5)),
    "linear_3d_input": (lambda r: nnx.Linear(5, 7, **F64, rngs=r), (2, 3, 5)),
    "general_heads": (lambda r: nnx.LinearGeneral(6, (2, 3), **F64, rngs=r), (2, 4, 6)),
    "general_two_axes": (lambda r: nnx.LinearGeneral((2, 3), 5, axis=(-2, -1), **F64, rngs=r), (2, 4, 2, 3)),
    "general_batch_axis": (lambda r: nnx.LinearGeneral(6, 4, batch_axis={0: 3}, **F64, rngs=r), (3, 5, 6)),
    "einsum_heads": (lambda r: nnx.Einsum("btd,dnh->btnh", (6, 2, 3), (2, 3), **F64, rngs=r), (2, 4, 6)),
    "einsum_batch_transposed": (lambda r: nnx.Einsum("bnd,ndh->bhn", (3, 6, 4), (4, 3), **F64, rngs=r), (2, 3, 6)),
    "einsum_ellipsis": (lambda r: nnx.Einsum("...d,dh->...h", (6, 4), (4,), **F64, rngs=r), (2, 3, 6)),
    "einsum_kernel_transposed": (lambda r: nnx.Einsum("bd,hd->bh", (4, 6), None, **F64, rngs=r), (3, 6)),
    "einsum_summed_input_index": (lambda r: nnx.Einsum("bsd,dh->bh", (5, 3), (3,), **F64, rngs=r), (2, 4, 5)),
}


@pytest.mark.parametrize("name", DENSE)
def test_every_dense_form_equals_flax(name):
    make, shape = DENSE[name]
    layer = make(nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), shape, jnp.float64)
    _check_forms(layer, x)


def _check_forms(layer, x):
    ref = layer(x)
    analog = crossjax.convert(layer, IDEAL)
    assert jnp.array_equal(analog(x), ref)
    layers.set_mode(analog, "train", IDEAL)  # the folded read
    np.testing.assert_allclose(analog(x), ref, rtol=0, atol=1e-10)
    layers.load_program(analog, layers.program_model(analog, TILED, jax.random.key(0)))
    layers.set_mode(analog, "hardware", TILED)  # programmed tiles, per-column conversion
    np.testing.assert_allclose(analog(x), ref, rtol=0, atol=1e-10)
    # the gradient through the exact tiled read equals the digital gradient
    layers.set_mode(analog, "train", TILED)
    gd = nnx.state(nnx.grad(lambda m: (m(x) ** 2).sum())(layer), nnx.Param)
    ga = nnx.grad(lambda m: (m(x) ** 2).sum())(analog)
    for (p, a), (_, d) in zip(nnx.to_flat_state(nnx.state(ga, nnx.Param)), nnx.to_flat_state(gd)):
        np.testing.assert_allclose(a[...], d[...], rtol=1e-9, atol=1e-9, err_msg=str(p))


def test_float32_model_converts_and_stays_float32():
    model = nnx.Sequential(nnx.Linear(8, 16, rngs=nnx.Rngs(0)), nnx.relu, nnx.Linear(16, 3, rngs=nnx.Rngs(1)))
    x = jax.random.normal(jax.random.key(0), (4, 8), jnp.float32)
    analog = crossjax.convert(model, TILED.set({"adc.bits": 20}))
    assert jnp.array_equal(analog(x), model(x))
    layers.set_mode(analog, "train")
    y = analog(x)
    assert y.dtype == jnp.float32
    np.testing.assert_allclose(y, model(x), rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- parameters and rules
def test_parameters_keep_values_shapes_and_paths_so_states_apply():
    model = Encoder(nnx.Rngs(0))
    analog = crossjax.convert(model)
    p0, p1 = nnx.state(model, nnx.Param), nnx.state(analog, nnx.Param)
    flat0, flat1 = dict(nnx.to_flat_state(p0)), dict(nnx.to_flat_state(p1))
    assert flat0.keys() == flat1.keys()
    for k in flat0:
        assert jnp.array_equal(flat0[k][...], flat1[k][...])
    # an optimizer state of the original applies to the converted model
    opt = nnx.Optimizer(model, training.make_optimizer(training.TrainConfig()), wrt=nnx.Param)
    opt_a = nnx.Optimizer(analog, training.make_optimizer(training.TrainConfig()), wrt=nnx.Param)
    nnx.update(opt_a, nnx.state(opt))
    # the original is untouched by converting and by updating the copy
    nnx.update(analog, jax.tree.map(lambda v: v + 1.0, p1))
    assert jnp.array_equal(nnx.state(model, nnx.Param)["head"]["kernel"][...], flat0[("head", "kernel")][...])


def test_rules_keep_first_and_last_digital_and_override_hardware():
    model = CNN(nnx.Rngs(0))
    model.eval()
    rules = [
        {"match": "conv1", "digital": True},
        {"match": "head", "digital": True},
        {"match": "conv2", "hardware": {"adc.bits": 4}},
    ]
    analog = crossjax.convert(model, TILED, rules=rules)
    table = {r["path"]: r["as"] for r in conversion.conversion_table(analog)}
    assert table == {"conv1": "digital (rule 0)", "conv2": "crossbar (rule 2)", "head": "digital (rule 1)"}
    assert type(analog.conv1) is nnx.Conv and type(analog.head) is nnx.Linear
    assert [p for p, _ in layers.crossbar_layers(analog)] == [("conv2",)]
    assert analog.conv2.active_config().adc.bits == 4
    # the override follows whatever model-wide config the model runs on
    layers.set_mode(analog, "train", NOISY)
    assert analog.conv2.active_config().adc.bits == 4 and analog.conv2.active_config().dac.bits == 6
    state = layers.program_model(analog, NOISY, jax.random.key(0))  # per-layer config in programming
    layers.load_program(analog, state)
    layers.set_mode(analog, "hardware")
    assert bool(jnp.isfinite(analog(_images())).all())
    # a full config as a rule, and the TOML-able form round trips
    r = conversion.Rule("conv2", hardware=IDEAL)
    assert conversion.rules_from_data([r.to_dict()])[0] == r
    fixed = crossjax.convert(model, TILED, rules=[r])
    assert fixed.conv2.active_config() == IDEAL and fixed.head.active_config() == TILED


@pytest.mark.parametrize(
    "rules, match",
    [
        ([{"match": "nothing*", "digital": True}], "match no convertible layer"),
        ([{"match": "*", "digital": True}], "nothing is left on crossbars"),
        ([{"match": "head", "digitl": True}], "unknown keys"),
        ([{"digital": True}], "needs a 'match'"),
        ([{"match": "head", "digital": True, "hardware": {"adc.bits": 4}}], "not both"),
        ([{"match": "head", "hardware": {"adc.bitz": 4}}], "invalid"),
        ([{"match": "head", "digital": "yes"}], "true or false"),
    ],
)
def test_bad_rules_are_refused_naming_the_fix(rules, match):
    with pytest.raises(ValueError, match=match):
        crossjax.convert(CNN(nnx.Rngs(0)), rules=rules)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="nnx.Module"):
        crossjax.convert(lambda x: x)
    with pytest.raises(ValueError, match="HardwareConfig"):
        crossjax.convert(CNN(nnx.Rngs(0)), {"adc.bits": 4})
    with pytest.raises(ValueError, match="no .* layers to convert"):
        crossjax.convert(nnx.LayerNorm(4, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="einsum_str"):
        crossjax.convert(_call_time_einsum())
    layer = crossjax.convert(nnx.Linear(3, 2, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="no hardware config"):
        layers.set_mode(layer, "train")


def _call_time_einsum():
    e = nnx.Einsum("ab,bc->ac", (3, 4), rngs=nnx.Rngs(0))
    e.einsum_str = None
    return e


def test_user_subclass_keeps_its_methods():
    class Scaled(nnx.Linear):
        def __call__(self, x):
            return 2.0 * super().__call__(x)

    layer = Scaled(3, 2, **F64, rngs=nnx.Rngs(0))
    x = jnp.ones((2, 3))
    analog = crossjax.convert(layer, IDEAL)
    assert isinstance(analog, Scaled) and isinstance(analog, conversion.AnalogLinear)
    layers.set_mode(analog, "train")
    np.testing.assert_allclose(analog(x), layer(x), atol=1e-12)


# --------------------------------------------------------------------------- the rest of crossjax
@pytest.mark.slow  # ~15-20 s on 2 cores
def test_pruning_calibration_and_checkpoints_of_a_converted_transformer(tmp_path):
    from crossjax import checkpoint

    model = Encoder(nnx.Rngs(0))
    analog = crossjax.convert(model, IDEAL)
    paths = pruning.crossbar_layer_paths(analog)
    assert ("attention", "query") in paths and ("head",) in paths
    masks = pruning.prune_model(analog, "column", 8, 8, sparsity=0.5)
    q = masks["attention"]["query"]["kernel"][...]
    assert q.shape == model.attention.query.kernel[...].shape  # (16, 2, 8): mask in the kernel's shape
    pruning.apply_model_masks(analog, masks)
    # the mask is XCS column pruning of the (16, 16) crossbar matrix, folded back to the kernel
    matrix = model.attention.query.kernel[...].reshape(16, 16)
    np.testing.assert_array_equal(q.reshape(16, 16), pruning.crossbar_column_mask(matrix, 8, 8, 0.5))
    assert 0.4 <= 1 - float(q.mean()) <= 0.6
    report = pruning.model_report(analog, 8, 8)
    assert "attention/query/kernel" in report["layers"]
    # calibrated ADCs on a model whose __call__ takes no rngs
    hw = HardwareConfig().set({"adc.bits": 6, "adc.range": "calibrated", "dac.range": "max"})
    layers.load_program(analog, layers.program_model(analog, hw, jax.random.key(0)))
    layers.set_mode(analog, "hardware", hw)
    layers.calibrate_model(analog, _images(4), rngs=nnx.Rngs(hardware=1))
    assert bool(jnp.isfinite(analog(_images(4))).all())
    # checkpoints: the converted model's parameters save and restore by path
    path = tmp_path / "m.ckpt"
    checkpoint.save_checkpoint(path, model=analog)
    fresh = crossjax.convert(Encoder(nnx.Rngs(7)))
    checkpoint.restore_checkpoint(path, model=fresh)
    for (_, a), (_, b) in zip(
        nnx.to_flat_state(nnx.state(analog, nnx.Param)), nnx.to_flat_state(nnx.state(fresh, nnx.Param))
    ):
        assert jnp.array_equal(a[...], b[...])


@pytest.mark.slow
def test_train_mode_finetuning_of_a_converted_model_lowers_the_loss():
    model = CNN(nnx.Rngs(0))
    x = _images(16)
    y = jnp.arange(16) % 10
    analog = crossjax.convert(model, NOISY)
    layers.set_mode(analog, "train")
    opt = training.new_optimizer(analog, training.TrainConfig(learning_rate=1e-2))
    losses = [float(training.train_step(analog, opt, x, y)) for _ in range(15)]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


def test_from_digital_without_a_target_converts():
    from crossjax import models

    model = CNN(nnx.Rngs(0))
    model.eval()
    analog = models.from_digital(model)
    assert layers.crossbar_layers(analog)
    assert jnp.array_equal(analog(_images()), model(_images()))


@pytest.mark.slow  # ~15-20 s on 2 cores
def test_study_with_vit_records_rules_and_conversion(tmp_path):
    from crossjax import study

    spec = study.get_preset("quick").replace(
        model="vit",
        max_train=200,
        max_test=60,
        samples=2,
        train=training.TrainConfig(steps=20, batch_size=32),
        rules=({"match": "embed", "digital": True}, {"match": "head", "digital": True}),
    )
    spec = spec.replace(configs=spec.configs[:2], finetune=None)
    res = study.run_study(spec, tmp_path / "vit", progress=False, plots=False)
    doc = json.loads((tmp_path / "vit" / "results.json").read_text())
    assert doc["meta"]["spec"]["rules"] == [{"match": "embed", "digital": True}, {"match": "head", "digital": True}]
    table = {r["path"]: r["as"] for r in doc["meta"]["conversion"]}
    assert table["embed"] == "digital (rule 0)" and table["head"] == "digital (rule 1)"
    assert table["blocks/0/attention/query"] == "crossbar"
    ideal = next(c for c in res["configs"] if c["name"] == "ideal")
    assert ideal["accuracy"]["mean"] == pytest.approx(res["digital"]["accuracy"], abs=1e-9)
    assert "digital (rule 0)" in (tmp_path / "vit" / "report.md").read_text()


@pytest.mark.slow  # ~15 s on 2 cores (8 compiled geometries)
@settings(max_examples=8, deadline=None)
@given(st.data())
def test_tiled_conv_equals_flax_for_random_geometries(data):
    """Property: for any 1-/2-D geometry (kernel, stride, padding, dilations, groups, tile size),
    the patches x tiles read with a 48-bit ADC equals Flax's convolution."""
    nd = data.draw(st.sampled_from([1, 2]))
    groups = data.draw(st.sampled_from([1, 2]))
    cin, cout = groups * data.draw(st.integers(1, 2)), groups * data.draw(st.integers(1, 3))
    k = tuple(data.draw(st.integers(1, 3)) for _ in range(nd))
    kwargs = dict(
        strides=tuple(data.draw(st.integers(1, 2)) for _ in range(nd)),
        kernel_dilation=tuple(data.draw(st.integers(1, 2)) for _ in range(nd)),
        input_dilation=tuple(data.draw(st.integers(1, 2)) for _ in range(nd)),
        padding=data.draw(st.sampled_from(["SAME", "VALID", "CIRCULAR", 1])),
        feature_group_count=groups,
    )
    if kwargs["padding"] == "CIRCULAR":
        kwargs["input_dilation"] = (1,) * nd
    elif max(kwargs["input_dilation"]) > 1:  # lax takes only explicit padding with input dilation
        kwargs["padding"] = data.draw(st.sampled_from([0, 1, 2]))
    size = tuple(data.draw(st.integers(4, 6)) for _ in range(nd))
    conv = nnx.Conv(cin, cout, k, **kwargs, **F64, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(data.draw(st.integers(0, 9))), (2, *size, cin), jnp.float64)
    rows, cols = data.draw(st.sampled_from([(4, 2), (8, 8), (64, 64)]))
    hw = TILED.set({"array.rows": rows, "array.cols": cols})
    analog = crossjax.convert(conv, hw)
    layers.set_mode(analog, "train")
    np.testing.assert_allclose(analog(x), conv(x), rtol=0, atol=1e-10)
