"""CrossbarLinear / CrossbarConv: modes, exactness on the ideal crossbar, programming."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from crossjax import crossbar, hardware, layers

IDEAL = hardware.HardwareConfig()
WRITE_NOISE = hardware.HardwareConfig().set({"device.write_noise.sigma": 0.05})
NOISY = hardware.HardwareConfig().set(
    {
        "array.parasitics.r_wire_row": 2.0,
        "array.parasitics.r_wire_col": 2.0,
        "device.write_noise.sigma": 0.05,
        "device.read_noise.sigma": 0.01,
    }
)


def _at(state, path):
    for k in path:
        state = state[k]
    return state


def _program(layer, hw, key=0):
    layers.set_mode(layer, "hardware", hw)
    layers.load_program(layer, layers.program_model(layer, hw, jax.random.key(key)))
    return layer


@pytest.mark.parametrize("K,N", [(70, 130), (64, 64), (5, 3)])
def test_linear_hardware_ideal_equals_digital(K, N):
    lin = layers.CrossbarLinear(K, N, param_dtype=jnp.float64, bias_init=nnx.initializers.normal(1.0), rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (4, 3, K))
    W, b = np.asarray(lin.kernel[...]), np.asarray(lin.bias[...])
    ref = np.asarray(x) @ W + b  # independent NumPy reference
    np.testing.assert_allclose(lin(x), ref, rtol=1e-12, atol=1e-12)
    _program(lin, IDEAL)
    y = lin(x)
    assert y.shape == (4, 3, N) and y.dtype == jnp.float64
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())
    layers.set_mode(lin, "train")
    np.testing.assert_allclose(lin(x), ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())


def test_linear_float32_path():
    lin = layers.CrossbarLinear(70, 33, rngs=nnx.Rngs(0))  # float32 params
    x = jax.random.normal(jax.random.key(1), (8, 70), dtype=jnp.float32)
    ref = x @ lin.kernel[...] + lin.bias[...]
    _program(lin, IDEAL)
    y = lin(x)
    assert y.dtype == jnp.float32
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)


CONV_CASES = [
    dict(cin=3, cout=70, k=3, strides=1, padding="SAME", dilation=1, groups=1),
    dict(cin=5, cout=7, k=(3, 2), strides=2, padding="VALID", dilation=1, groups=1),
    dict(cin=6, cout=9, k=3, strides=(2, 1), padding=1, dilation=2, groups=3),
    dict(cin=8, cout=8, k=3, strides=1, padding=((2, 0), (1, 1)), dilation=(1, 2), groups=8),  # depthwise
    dict(cin=16, cout=12, k=5, strides=1, padding="SAME", dilation=1, groups=2),  # K per group = 200 > 64
]


@pytest.mark.parametrize(
    "case", CONV_CASES + [dict(cin=2, cout=2, k=3, strides=2, padding="SAME_LOWER", dilation=1, groups=1)]
)
@pytest.mark.slow
def test_unfold_patches_equals_lax_patches_and_its_gradient(case):
    """The slicing im2col equals jax.lax.conv_general_dilated_patches, values and VJP."""
    conv = layers.CrossbarConv(
        case["cin"],
        case["cout"],
        case["k"],
        strides=case["strides"],
        padding=case["padding"],
        kernel_dilation=case["dilation"],
        feature_group_count=case["groups"],
        rngs=nnx.Rngs(0),
    )
    x = jax.random.normal(jax.random.key(5), (2, 11, 10, case["cin"]), jnp.float64)

    def ours(x):
        return layers.unfold_patches(x, conv.kernel_size, conv.strides, conv.padding, conv.kernel_dilation)

    def lax_patches(x):
        return jax.lax.conv_general_dilated_patches(
            x,
            filter_shape=conv.kernel_size,
            window_strides=conv.strides,
            padding=conv.padding,
            rhs_dilation=conv.kernel_dilation,
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )

    y, vjp = jax.vjp(ours, x)
    y_ref, vjp_ref = jax.vjp(lax_patches, x)
    assert y.shape == y_ref.shape
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    ct = jax.random.normal(jax.random.key(6), y.shape, jnp.float64)
    np.testing.assert_allclose(vjp(ct)[0], vjp_ref(ct)[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_hardware_ideal_equals_digital(case):
    conv = layers.CrossbarConv(
        case["cin"],
        case["cout"],
        case["k"],
        strides=case["strides"],
        padding=case["padding"],
        kernel_dilation=case["dilation"],
        feature_group_count=case["groups"],
        param_dtype=jnp.float64,
        bias_init=nnx.initializers.normal(1.0),
        rngs=nnx.Rngs(0),
    )
    k = (case["k"], case["k"]) if isinstance(case["k"], int) else case["k"]
    ref_conv = nnx.Conv(
        case["cin"],
        case["cout"],
        k,
        strides=case["strides"],
        padding=case["padding"],
        kernel_dilation=case["dilation"],
        feature_group_count=case["groups"],
        param_dtype=jnp.float64,
        rngs=nnx.Rngs(5),
    )
    ref_conv.kernel[...] = conv.kernel[...]
    ref_conv.bias[...] = conv.bias[...]
    x = jax.random.normal(jax.random.key(2), (2, 11, 10, case["cin"]))
    ref = ref_conv(x)  # flax's own convolution as the independent reference
    np.testing.assert_allclose(conv(x), ref, rtol=1e-12, atol=1e-12)
    _program(conv, IDEAL)
    y = conv(x)  # patches x crossbar tiles
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())


def test_conv_crossbar_weights_layout():
    conv = layers.CrossbarConv(4, 6, (3, 2), feature_group_count=2, param_dtype=jnp.float64, rngs=nnx.Rngs(0))
    kern = np.asarray(conv.kernel[...])  # (3, 2, 2, 6)
    W = np.asarray(conv.crossbar_weights())
    assert W.shape == (2, 2 * 3 * 2, 3)
    for g in range(2):  # docs/architecture.md: kernel.transpose(2, 0, 1, 3).reshape(Cin*kh*kw, Cout)
        np.testing.assert_array_equal(W[g], kern[..., 3 * g : 3 * (g + 1)].transpose(2, 0, 1, 3).reshape(12, 3))


@pytest.mark.slow
def test_program_model_is_pure_and_folds_layer_index():
    model = nnx.Sequential(
        layers.CrossbarLinear(20, 30, param_dtype=jnp.float64, rngs=nnx.Rngs(0)),
        layers.CrossbarLinear(30, 10, param_dtype=jnp.float64, rngs=nnx.Rngs(1)),
    )
    key = jax.random.key(3)
    s1 = layers.program_model(model, WRITE_NOISE, key)
    s2 = layers.program_model(model, WRITE_NOISE, key)
    for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s2)):
        np.testing.assert_array_equal(a, b)
    # layer i uses fold_in(key, i)
    for i, (path, layer) in enumerate(layers.crossbar_layers(model)):
        direct = crossbar.program(layer.kernel[...], WRITE_NOISE, jax.random.fold_in(key, i))
        got = _at(s1, path)["crossbar_state"].get_value()
        np.testing.assert_array_equal(got.g_eff, direct.g_eff)
    # the model was not modified
    assert all(l.crossbar_state.get_value() is None for _, l in layers.crossbar_layers(model))
    # vmap over keys: a batch of Monte Carlo samples that differ
    keys = jax.random.split(key, 3)
    batch = jax.vmap(lambda k: layers.program_model(model, WRITE_NOISE, k))(keys)
    g = _at(batch, layers.crossbar_layers(model)[0][0])["crossbar_state"].get_value().g_eff
    assert g.shape[0] == 3
    assert not np.allclose(g[0], g[1]) and not np.allclose(g[1], g[2])
    one = layers.program_model(model, WRITE_NOISE, keys[1])
    np.testing.assert_allclose(
        g[1], _at(one, layers.crossbar_layers(model)[0][0])["crossbar_state"].get_value().g_eff, rtol=1e-12
    )


@pytest.mark.slow
def test_train_mode_fresh_samples_and_gradients_under_nnx_jit():
    lin = layers.CrossbarLinear(40, 70, param_dtype=jnp.float64, rngs=nnx.Rngs(params=0, hardware=1))
    layers.set_mode(lin, "train", NOISY)
    x = jax.random.normal(jax.random.key(2), (5, 40))

    @nnx.jit
    def step(layer, x):
        def loss(layer):
            return jnp.mean(layer(x) ** 2)

        return nnx.value_and_grad(loss)(layer)

    l1, g1 = step(lin, x)
    l2, g2 = step(lin, x)
    assert np.isfinite(l1) and np.isfinite(l2)
    assert l1 != l2  # the "hardware" stream advanced: a fresh sample per step
    gk = np.asarray(g1.kernel[...])
    assert np.all(np.isfinite(gk)) and np.abs(gk).max() > 0
    # the gradient is close to the digital one (mild noise) but not identical (noise and IR drop in the loop)
    layers.set_mode(lin, "digital")
    gd = nnx.grad(lambda m: jnp.mean(m(x) ** 2))(lin).kernel[...]
    cos = np.sum(gk * gd) / (np.linalg.norm(gk) * np.linalg.norm(gd))
    assert cos > 0.7
    assert not np.allclose(gk, gd)


def test_hardware_mode_read_noise_from_call_rngs():
    lin = _program(layers.CrossbarLinear(30, 20, param_dtype=jnp.float64, rngs=nnx.Rngs(0)), NOISY)
    x = jax.random.normal(jax.random.key(2), (4, 30))
    a = lin(x, rngs=nnx.Rngs(hardware=7))
    b = lin(x, rngs=nnx.Rngs(hardware=7))
    c = lin(x, rngs=nnx.Rngs(hardware=8))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_errors_name_the_problem():
    lin = layers.CrossbarLinear(8, 4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="mode"):
        layers.set_mode(lin, "analog", IDEAL)
    with pytest.raises(ValueError, match="hardware"):
        layers.set_mode(lin, "hardware")  # no config yet
    layers.set_mode(lin, "hardware", IDEAL)
    with pytest.raises(ValueError, match="program"):
        lin(jnp.ones((2, 8)))
    with pytest.raises(ValueError, match="in_features"):
        lin(jnp.ones((2, 9)))
    with pytest.raises(ValueError, match="hardware"):
        layers.set_mode(lin, "train", hardware={"rows": 64})
    other = layers.CrossbarLinear(8, 4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="state"):
        layers.load_program(nnx.Sequential(lin, other), layers.program_model(lin, IDEAL, jax.random.key(0)))
    with pytest.raises(ValueError, match="feature_group_count"):
        layers.CrossbarConv(6, 4, 3, feature_group_count=4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="padding"):
        layers.CrossbarConv(6, 4, 3, padding="FULL", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="NHWC"):
        layers.CrossbarConv(6, 4, 3, rngs=nnx.Rngs(0))(jnp.ones((2, 8, 8, 5)))


LINEAR = hardware.HardwareConfig().set(
    {
        "array.rows": 16,
        "array.cols": 8,
        "array.parasitics.r_wire_row": 2.0,
        "array.parasitics.r_wire_col": 2.0,
        "device.write_noise.sigma": 0.05,
        "device.stuck.p_min": 0.02,
        "dac.bits": 5,
        "dac.x_max": 1.5,
    }
)


@pytest.mark.parametrize("layout", ["dense", "sparse"])
@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.slow
def test_conv_linear_hardware_equals_patches_through_kernels(case, layout):
    """Without ADC and read noise a programmed conv runs as conv(q(x), W_eff): the same as
    unfolding patches and calling crossbar.matmul on the layer's own programmed state."""
    hw = LINEAR.set({"mapping.layout": layout})
    assert crossbar.is_linear(hw) and not crossbar.is_linear(hw.set({"dac.range": "max"}))
    conv = layers.CrossbarConv(
        case["cin"],
        case["cout"],
        case["k"],
        strides=case["strides"],
        padding=case["padding"],
        kernel_dilation=case["dilation"],
        feature_group_count=case["groups"],
        param_dtype=jnp.float64,
        bias_init=nnx.initializers.normal(1.0),
        rngs=nnx.Rngs(0),
    )
    x = 0.7 * jax.random.normal(jax.random.key(2), (2, 11, 10, case["cin"]))
    _program(conv, hw, key=3)
    y = conv(x)
    patches = jax.lax.conv_general_dilated_patches(
        x,
        filter_shape=conv.kernel_size,
        window_strides=conv.strides,
        padding=conv.padding,
        rhs_dilation=conv.kernel_dilation,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    state, G = conv.crossbar_state.get_value(), case["groups"]
    if G == 1:
        ref = crossbar.matmul(patches, state, hw)
    else:
        p = patches.reshape(*patches.shape[:-1], G, patches.shape[-1] // G)
        ref = jax.vmap(crossbar.matmul, in_axes=(-2, 0, None), out_axes=-2)(p, state, hw)
        ref = ref.reshape(*ref.shape[:-2], case["cout"])
    ref = ref + conv.bias[...]
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())
    # and the non-idealities are really there: the result is not the digital conv
    layers.set_mode(conv, "digital")
    assert np.abs(np.asarray(conv(x) - y)).max() > 1e-3 * np.abs(np.asarray(y)).max()


@pytest.mark.parametrize("case", [CONV_CASES[0], CONV_CASES[2]])
@pytest.mark.slow
def test_conv_linear_train_mode_equals_patches_value_and_gradient(case):
    """Train mode draws the same fresh sample as crossbar.analog_matmul on the patches,
    and its gradient w.r.t. the kernel (through programming and the IR-drop solve) agrees."""
    conv = layers.CrossbarConv(
        case["cin"],
        case["cout"],
        case["k"],
        strides=case["strides"],
        padding=case["padding"],
        kernel_dilation=case["dilation"],
        feature_group_count=case["groups"],
        use_bias=False,
        param_dtype=jnp.float64,
        rngs=nnx.Rngs(0),
    )
    layers.set_mode(conv, "train", LINEAR)
    x = 0.7 * jax.random.normal(jax.random.key(2), (2, 9, 8, case["cin"]))
    key, G = jax.random.key(11), case["groups"]

    def fast(m):
        return m(x, rngs=nnx.Rngs(hardware=key))

    def patches_path(m):
        W = m.crossbar_weights()
        p = jax.lax.conv_general_dilated_patches(
            x,
            filter_shape=m.kernel_size,
            window_strides=m.strides,
            padding=m.padding,
            rhs_dilation=m.kernel_dilation,
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        k = nnx.Rngs(hardware=key)["hardware"]()  # the key the layer draws from the same stream
        if G == 1:
            return crossbar.analog_matmul(p, W, LINEAR, k)
        p = p.reshape(*p.shape[:-1], G, p.shape[-1] // G)
        y = jax.vmap(crossbar.analog_matmul, in_axes=(-2, 0, None, 0), out_axes=-2)(
            p, W, LINEAR, jax.random.split(k, G)
        )
        return y.reshape(*y.shape[:-2], case["cout"])

    assert conv._linear_kernel(x, nnx.Rngs(hardware=key)) is not None  # the kernel path is taken
    w = jax.random.normal(jax.random.key(4), fast(conv).shape)
    y, g = nnx.value_and_grad(lambda m: jnp.sum(w * fast(m)))(conv)
    y_ref, g_ref = nnx.value_and_grad(lambda m: jnp.sum(w * patches_path(m)))(conv)
    g, g_ref = g["kernel"][...], g_ref["kernel"][...]
    np.testing.assert_allclose(y, y_ref, rtol=1e-10)
    np.testing.assert_allclose(g, g_ref, rtol=1e-9, atol=1e-9 * np.abs(g_ref).max())
    assert np.abs(np.asarray(g)).max() > 0
