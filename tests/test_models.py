"""MLP / VGG11 / ResNet18 on crossbars: forward, backward with non-idealities,
Monte Carlo evaluation (CIFAR-shaped inputs, 64x64 tiles, reduced width), converter."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from crossjax import hardware, layers, models, montecarlo

IDEAL = hardware.HardwareConfig()  # 64x64 tiles
# device noise and converters (cheap: no circuit solve)
NOISE_ADC = hardware.HardwareConfig().set(
    {"device.write_noise.sigma": 0.03, "device.stuck.p_min": 0.01, "adc.bits": 8, "dac.bits": 8}
)
# everything, including the exact IR-drop solve (slow on CPU: marked slow)
NONIDEAL = NOISE_ADC.set({"array.parasitics.r_wire_row": 1.0, "array.parasitics.r_wire_col": 1.0})
READ = NOISE_ADC.set({"device.read_noise.sigma": 0.01})


def _cifar_batch(n):
    """A mocked CIFAR-10 batch through the real loader (``tfds.testing.mock_data``, no network)."""
    import tensorflow_datasets as tfds

    from crossjax import data

    with tfds.testing.mock_data(num_examples=max(n, 4)):
        ds = data.load_dataset("cifar10", split="test")
    assert ds.x.shape[1:] == (32, 32, 3)
    return ds.x[:n].astype(np.float64), ds.y[:n]


def _count(model, kind):
    return sum(isinstance(n, kind) for _, n in nnx.iter_graph(model))


def test_architectures_have_the_paper_layer_counts():
    v11 = nnx.eval_shape(lambda: models.vgg11(rngs=nnx.Rngs(0), width=0.125))
    v16 = nnx.eval_shape(lambda: models.vgg16(rngs=nnx.Rngs(0), width=0.125))
    r18 = nnx.eval_shape(lambda: models.resnet18(rngs=nnx.Rngs(0), width=0.125))
    assert _count(v11, layers.CrossbarConv) == 8 and _count(v11, layers.CrossbarLinear) == 1
    assert _count(v16, layers.CrossbarConv) == 13 and _count(v16, layers.CrossbarLinear) == 1
    # 1 stem + 16 block convs + 3 projection shortcuts, 1 classifier
    assert _count(r18, layers.CrossbarConv) == 20 and _count(r18, layers.CrossbarLinear) == 1
    full = nnx.eval_shape(lambda: models.vgg11(rngs=nnx.Rngs(0)))  # shapes only, no init cost
    assert full.classifier.kernel.shape == (512, 10)
    with pytest.raises(ValueError, match="config_name"):
        models.VGG("vgg7", 10, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="width"):
        models.resnet18(width=0, rngs=nnx.Rngs(0))


def _forward(model, x):
    return nnx.jit(lambda m, x: m(x))(model, x)


def _cnn_forward_backward_and_monte_carlo(build, train_hw, eval_hw, check_ideal=False, width=0.0625):
    model = build(10, width=width, rngs=nnx.Rngs(params=0, hardware=1))
    x, y = _cifar_batch(2)
    x = jnp.asarray(x, jnp.float32)
    if check_ideal:  # forward: ideal crossbar == digital (float32 params, 64x64 tiles)
        model.eval()
        digital = _forward(model, x)
        assert digital.shape == (2, 10)
        layers.set_mode(model, "hardware", IDEAL)
        layers.load_program(model, layers.program_model(model, IDEAL, jax.random.key(0)))
        ideal = _forward(model, x)
        np.testing.assert_allclose(ideal, digital, rtol=1e-3, atol=1e-4 * float(jnp.abs(digital).max()))
        layers.clear_program(model)

    # backward: train mode with noise, IR drop, DAC/ADC in the loop (fresh sample per step)
    model.train()
    layers.set_mode(model, "train", train_hw)

    @nnx.jit
    def grads(model, x, y):
        def loss(model):
            return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

        return nnx.value_and_grad(loss)(model)

    loss, g = grads(model, x, jnp.asarray(y))
    leaves = jax.tree.leaves(nnx.state(g, nnx.Param))
    assert np.isfinite(float(loss))
    assert all(np.all(np.isfinite(l)) for l in leaves)
    # the first conv layer (the one furthest from the loss) gets a gradient through the circuit
    stem_path = layers.crossbar_layers(model)[0][0]
    g_stem = g
    for k in stem_path:
        g_stem = getattr(g_stem, k) if not isinstance(k, int) else g_stem[k]
    assert float(jnp.abs(g_stem.kernel[...]).max()) > 0
    nonzero = sum(float(jnp.abs(l).max()) > 0 for l in leaves)
    assert nonzero >= len(leaves) // 2

    # Monte Carlo evaluation: 2 samples of the non-ideal hardware, programmed once each
    res = montecarlo.evaluate(
        model,
        eval_hw,
        jax.random.split(jax.random.key(3), 2),
        np.asarray(x),
        y,
        batch_size=2,
        progress=False,
        return_logits=True,
    )
    assert res["accuracy"].shape == (2,)
    assert np.all((res["accuracy"] >= 0) & (res["accuracy"] <= 1))
    assert np.all(np.isfinite(res["logits"]))
    assert not np.allclose(res["logits"][0], res["logits"][1])  # the samples differ


@pytest.mark.parametrize(
    "build", [models.vgg11, pytest.param(models.resnet18, marks=pytest.mark.slow)], ids=["vgg11", "resnet18"]
)
@pytest.mark.slow
def test_cnn_forward_backward_and_monte_carlo(build):
    """Mocked CIFAR-10, 64x64 tiles: ideal == digital; gradients with write and read noise,
    stuck cells, DAC/ADC in the loop; Monte Carlo evaluation."""
    _cnn_forward_backward_and_monte_carlo(build, READ, READ)


@pytest.mark.slow
@pytest.mark.parametrize("build", [models.vgg11, models.resnet18], ids=["vgg11", "resnet18"])
def test_cnn_with_ir_drop(build):
    """The same with the exact IR-drop circuit solve in training and evaluation."""
    _cnn_forward_backward_and_monte_carlo(build, NONIDEAL, NONIDEAL, check_ideal=True, width=0.125)


def test_mlp_and_from_digital_module():
    class Digital(nnx.Module):
        def __init__(self, rngs):
            self.layers = nnx.List([nnx.Linear(64, 32, rngs=rngs), nnx.Linear(32, 10, rngs=rngs)])

    digital = Digital(nnx.Rngs(7))
    mlp = models.MLP(64, (32,), 10, rngs=nnx.Rngs(0))
    models.from_digital(digital, mlp)
    x = jax.random.uniform(jax.random.key(0), (5, 8, 8))
    ref = nnx.relu(x.reshape(5, 64) @ digital.layers[0].kernel[...] + digital.layers[0].bias[...])
    ref = ref @ digital.layers[1].kernel[...] + digital.layers[1].bias[...]
    np.testing.assert_allclose(mlp(x), ref, rtol=1e-6)
    # wrong architecture
    with pytest.raises(ValueError, match="digital"):
        models.from_digital(digital, models.MLP(64, (16,), 10, rngs=nnx.Rngs(0)))


@pytest.mark.slow
def test_from_digital_conv_batchnorm_and_state_dict():
    class DigitalVGG(nnx.Module):  # the same attribute structure as models.VGG
        def __init__(self, rngs):
            chans = [3, 8, 16, 32, 32, 64, 64, 64, 64]
            self.features = nnx.List([])
            for a, b in zip(chans[:-1], chans[1:]):
                self.features.append(_DigitalConvBN(a, b, rngs))
            self.classifier = nnx.Linear(64, 10, rngs=rngs)

    digital = DigitalVGG(nnx.Rngs(3))
    model = models.vgg11(width=0.125, rngs=nnx.Rngs(0))
    models.from_digital(digital, model)
    np.testing.assert_array_equal(model.features[4].conv.kernel[...], digital.features[4].conv.kernel[...])
    np.testing.assert_array_equal(model.features[4].bn.scale[...], digital.features[4].bn.scale[...])
    np.testing.assert_array_equal(model.classifier.kernel[...], digital.classifier.kernel[...])
    # from a state dict with the model's paths (e.g. a checkpoint of another crossbar model)
    other = models.vgg11(width=0.125, rngs=nnx.Rngs(5))
    models.from_digital(nnx.state(other, nnx.Param), model)
    np.testing.assert_array_equal(model.features[2].conv.kernel[...], other.features[2].conv.kernel[...])
    with pytest.raises(ValueError, match="shape"):
        models.from_digital(nnx.state(models.vgg11(width=0.25, rngs=nnx.Rngs(0)), nnx.Param), model)


class _DigitalConvBN(nnx.Module):
    def __init__(self, cin, cout, rngs):
        self.conv = nnx.Conv(cin, cout, (3, 3), padding=1, use_bias=False, rngs=rngs)
        self.bn = nnx.BatchNorm(cout, rngs=rngs)
