"""The mU-Net builder: the residual skip path, skip convolutions, defaults, save and reload."""

import keras
import numpy as np
import pytest

from architectures.munet import build_munet, default_skip_convs


def tiny(**kwargs):
    return build_munet((32, 32, 1), depth=2, base_filters=4, **kwargs)


def test_output_shape_and_range():
    model = tiny()
    y = model.predict_on_batch(np.random.default_rng(0).random((3, 32, 32, 1), dtype=np.float32))
    assert y.shape == (3, 32, 32, 1)
    assert np.all((y > 0) & (y < 1))


def test_skip_carries_features_minus_relu_deconv_of_pooled_features():
    model = tiny(skip_convs=[0, 0])
    x = np.random.default_rng(1).random((2, 32, 32, 1), dtype=np.float32)
    probe = keras.Model(
        model.input, [model.get_layer(n).output for n in ("enc0_relu2", "skip0_residual")]
    )
    features, skip = (np.asarray(t) for t in probe.predict_on_batch(x))
    # numpy reference: 2x2 max pooling, then the stride-2 2x2 transposed convolution, ReLU
    pooled = features.reshape(2, 16, 2, 16, 2, 4).max(axis=(2, 4))
    deconv = model.get_layer("skip0_deconv")
    kernel, bias = deconv.kernel.numpy(), deconv.bias.numpy()  # (2, 2, out, in)
    up = np.einsum("bhwi,yxoi->bhywxo", pooled, kernel).reshape(2, 32, 32, 4) + bias
    expected = features - np.maximum(up, 0.0)
    np.testing.assert_allclose(skip, expected, atol=1e-5)


def test_default_skip_convolutions_decrease_with_depth():
    assert default_skip_convs(4) == [4, 3, 2, 1]
    model = build_munet((32, 32, 1), depth=3, base_filters=4)
    names = [layer.name for layer in model.layers]
    for level, n in enumerate([3, 2, 1]):
        assert sum(name.startswith(f"skip{level}_conv") for name in names) == n


def test_custom_skip_convolutions_and_bad_values():
    names = [layer.name for layer in tiny(skip_convs=[2, 0]).layers]
    assert "skip0_conv2" in names and not any(n.startswith("skip1_conv") for n in names)
    with pytest.raises(ValueError, match="skip_convs must list 2"):
        tiny(skip_convs=[1])
    with pytest.raises(ValueError, match="divisible by 2\\*\\*depth = 8"):
        build_munet((36, 36, 1), depth=3, base_filters=4)
    with pytest.raises(ValueError, match="dropout"):
        tiny(dropout=1.0)


def test_glf_paper_defaults():
    model = tiny()
    kernel = model.get_layer("skip0_conv1").kernel.numpy()
    assert np.abs(kernel).max() <= 0.1 + 1e-7  # truncated normal, sd 0.05
    np.testing.assert_allclose(model.get_layer("skip1_deconv").bias.numpy(), 0.1)
    assert model.get_layer("skip0_bn1").momentum == 0.9
    assert model.get_layer("bottleneck_dropout").rate == 0.6


def test_more_parameters_than_the_unet_and_reload(tmp_path):
    from architectures.unet import build_unet

    model = tiny()
    assert model.count_params() > build_unet((32, 32, 1), depth=2, base_filters=4).count_params()
    x = np.random.default_rng(2).random((1, 32, 32, 1), dtype=np.float32)
    model.save(tmp_path / "munet.keras")
    again = keras.saving.load_model(tmp_path / "munet.keras")
    np.testing.assert_allclose(again.predict_on_batch(x), model.predict_on_batch(x), atol=1e-6)


def test_softmax2_output_is_the_tumour_channel_of_a_pixelwise_softmax(tmp_path):
    model = tiny(output="softmax2")
    x = np.random.default_rng(3).random((2, 32, 32, 1), dtype=np.float32)
    y = np.asarray(model.predict_on_batch(x))
    assert y.shape == (2, 32, 32, 1)
    # numpy reference: softmax over the 2 logits of the last 1x1 convolution, channel 1
    logits = keras.Model(model.input, model.get_layer("mask_logits").output)
    z = np.asarray(logits.predict_on_batch(x), np.float64)  # (2, 32, 32, 2)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(y[..., 0], e[..., 1] / e.sum(axis=-1), rtol=1e-5, atol=1e-6)
    # both channels get the paper's constant bias 0.1, which cancels in the softmax
    np.testing.assert_allclose(model.get_layer("mask_logits").bias.numpy(), [0.1, 0.1])
    model.save(tmp_path / "softmax2.keras")
    again = keras.saving.load_model(tmp_path / "softmax2.keras")  # safe mode, no custom layer
    np.testing.assert_allclose(again.predict_on_batch(x), y, atol=1e-6)


def test_start_probability_sigmoid_above_half_softmax2_around_half():
    # At initialisation (paper's init: truncated normal sd 0.05, bias 0.1) the sigmoid head
    # starts at sigmoid(0.1 + small) for most pixels; the softmax head is centred on 0.5.
    x = np.random.default_rng(4).random((4, 32, 32, 1), dtype=np.float32)
    means = {}
    for head in ("sigmoid", "softmax2"):
        keras.utils.set_random_seed(0)
        y = np.asarray(tiny(output=head)(x, training=True))
        means[head] = (y.mean(), (y > 0.5).mean())
    assert means["sigmoid"][0] == pytest.approx(0.525, abs=0.02)
    assert means["softmax2"][0] == pytest.approx(0.5, abs=0.02)
    assert means["sigmoid"][1] > means["softmax2"][1]


def test_output_layer_choices_are_checked():
    with pytest.raises(ValueError, match="output must be one of"):
        tiny(output="softmax")
    with pytest.raises(ValueError, match="out_channels=2"):
        tiny(output="softmax2", out_channels=2)
