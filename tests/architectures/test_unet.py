"""The U-Net builder: shapes, the GLF paper's initialisation, save and reload."""

import keras
import numpy as np
import pytest

from architectures.unet import build_unet


def test_output_shape_and_sigmoid_range():
    model = build_unet((32, 32, 1), depth=2, base_filters=4)
    x = np.random.default_rng(0).random((2, 32, 32, 1), dtype=np.float32)
    y = model.predict_on_batch(x)
    assert y.shape == (2, 32, 32, 1)
    assert np.all((y > 0) & (y < 1))


def test_filters_double_per_level():
    model = build_unet((32, 32, 1), depth=2, base_filters=4)
    assert model.get_layer("enc0_conv1").filters == 4
    assert model.get_layer("enc1_conv1").filters == 8
    assert model.get_layer("bottleneck_conv1").filters == 16
    assert model.get_layer("dec0_conv2").filters == 4


def test_size_not_divisible_by_pooling_is_refused():
    with pytest.raises(ValueError, match="divisible by 2\\*\\*depth = 4"):
        build_unet((30, 32, 1), depth=2, base_filters=4)


def test_glf_paper_initialisation_and_batch_norm_decay():
    model = build_unet(
        (32, 32, 1),
        depth=2,
        base_filters=4,
        batch_norm=True,
        bn_momentum=0.9,
        dropout=0.6,
        kernel_stddev=0.05,
        bias_value=0.1,
    )
    kernel = model.get_layer("enc1_conv2").kernel.numpy()
    # truncated normal: every weight within two standard deviations
    assert np.abs(kernel).max() <= 2 * 0.05 + 1e-7
    assert 0.02 < kernel.std() < 0.05
    np.testing.assert_allclose(model.get_layer("mask").bias.numpy(), 0.1)
    assert model.get_layer("enc0_bn1").momentum == 0.9
    assert model.get_layer("bottleneck_dropout").rate == 0.6


def test_saved_model_reloads_and_predicts_the_same(tmp_path):
    model = build_unet((32, 32, 1), depth=2, base_filters=4)
    x = np.random.default_rng(1).random((1, 32, 32, 1), dtype=np.float32)
    model.save(tmp_path / "unet.keras")
    again = keras.saving.load_model(tmp_path / "unet.keras")
    np.testing.assert_allclose(again.predict_on_batch(x), model.predict_on_batch(x), atol=1e-6)
