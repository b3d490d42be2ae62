"""VGG-16 classifier and loss-estimator head: shapes, taps, weights handling, save/reload."""

import keras
import numpy as np
import pytest

import keras_losses
from architectures import vgg


def test_vanilla_and_estimator_outputs():
    m = vgg.build_vgg16_classifier((32, 32, 3), 5, width=0.0625)
    assert m.output_shape == (None, 5)
    e = vgg.build_vgg16_classifier((32, 32, 3), 5, width=0.0625, loss_estimator=True)
    assert e.output_shape == (None, 6)
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    out = e.predict(x, verbose=0)
    np.testing.assert_allclose(out[:, :5].sum(1), 1.0, rtol=1e-5)
    assert vgg.logits_model(e).output_shape == (None, 5)
    # the head reads conv layers 4, 7, 10, 13: one Dense(128) per tap
    heads = [layer for layer in e.layers if layer.name.startswith("lossest_fc_")]
    assert [h.name.removeprefix("lossest_fc_") for h in heads] == list(vgg.ESTIMATOR_TAPS)
    assert all(h.units == 128 for h in heads)
    convs = [
        layer.name
        for layer in e.get_layer("vgg16").layers
        if isinstance(layer, keras.layers.Conv2D)
    ]
    assert len(convs) == 13 and [convs[i - 1] for i in (4, 7, 10, 13)] == list(vgg.ESTIMATOR_TAPS)


def test_fc_head_is_vgg16s_classifier_and_gap_head_is_lighter():
    fc = vgg.build_vgg16_classifier((64, 64, 3), 5, width=0.125, dropout=0.4)
    assert [fc.get_layer(n).units for n in ("fc1", "fc2")] == [512, 512]  # 4096 x 0.125
    assert fc.get_layer("dropout1").rate == 0.4 and fc.get_layer("dropout2").rate == 0.4
    # flatten of the 2 x 2 x 64 block-5 output feeds fc1
    assert fc.get_layer("fc1").kernel.shape == (2 * 2 * 64, 512)
    gap = vgg.build_vgg16_classifier((64, 64, 3), 5, width=0.125, head="gap")
    assert gap.get_layer("logits").kernel.shape == (64, 5)
    extra = fc.count_params() - gap.count_params()
    assert extra == (256 * 512 + 512) + (512 * 512 + 512) + (512 * 5 + 5) - (64 * 5 + 5)
    with pytest.raises(ValueError, match="head must be one of fc, gap"):
        vgg.build_vgg16_classifier((32, 32, 3), 2, width=0.0625, head="mlp")


def test_full_width_is_keras_applications_vgg16():
    m = vgg.build_vgg16_classifier((32, 32, 3), 5, width=1.0, weights="none")
    base = m.get_layer("vgg16")
    assert (
        base.count_params()
        == keras.applications.VGG16(
            include_top=False, weights=None, input_shape=(32, 32, 3)
        ).count_params()
    )


def test_l2_penalty_on_every_kernel():
    m = vgg.build_vgg16_classifier((32, 32, 3), 3, width=0.0625, l2=0.5, loss_estimator=True)
    kernels = [w for w in m.trainable_weights if "kernel" in w.path]
    expected = sum(0.5 * float(np.sum(np.square(k.numpy()))) for k in kernels)
    assert float(sum(m.losses)) == pytest.approx(expected, rel=1e-4)


def test_weights_resolution(tmp_path, monkeypatch, capsys):
    # A cached ImageNet file under KERAS_HOME is found and used.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    cached = tmp_path / "models" / vgg.NOTOP_FILE
    cached.parent.mkdir()
    cached.write_bytes(b"weights")
    assert vgg.imagenet_weights_path() == cached
    assert vgg.resolve_weights("imagenet") == str(cached)
    # Without one, "imagenet" says so and starts from random initialization (no download).
    cached.unlink()
    monkeypatch.setattr(vgg, "imagenet_weights_path", lambda: None)
    assert vgg.resolve_weights("imagenet") is None
    assert "random initialization" in capsys.readouterr().out
    assert vgg.resolve_weights("none") is None
    with pytest.raises(FileNotFoundError, match="--weights"):
        vgg.resolve_weights(str(tmp_path / "missing.h5"))


def test_weights_path_loads_and_flips_first_conv(tmp_path):
    base = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "w.weights.h5"
    base.save_weights(path)
    m = vgg.build_vgg16_classifier((32, 32, 3), 2, weights=str(path))
    k = m.get_layer("vgg16").get_layer("block1_conv1").get_weights()[0]
    np.testing.assert_array_equal(k, base.get_layer("block1_conv1").get_weights()[0][:, :, ::-1, :])
    np.testing.assert_array_equal(
        m.get_layer("vgg16").get_layer("block5_conv3").get_weights()[0],
        base.get_layer("block5_conv3").get_weights()[0],
    )


def test_saved_model_reloads_with_plain_load_model(tmp_path):
    m = vgg.build_vgg16_classifier((32, 32, 3), 4, width=0.0625, loss_estimator=True, l2=1e-4)
    m.compile(optimizer="adam", loss=keras_losses.LossEstimatorLoss(class_weights=[1, 2, 3, 4]))
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    y = keras.utils.to_categorical([0, 3], 4)
    m.fit(x, y, epochs=1, verbose=0)
    m.save(tmp_path / "m.keras")
    r = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(
        r.predict(x, verbose=0), m.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    assert r.loss.class_weights == [1, 2, 3, 4]


def test_too_small_input():
    with pytest.raises(ValueError, match="at least 32x32"):
        vgg.build_vgg16_classifier((16, 16, 3), 2, width=0.0625)


def test_he_init_scales_kernels_and_inputs(tmp_path):
    # He-normal: kernel sd sqrt(2 / fan_in) (Keras rescales its truncated normal); Glorot-uniform:
    # sd sqrt(2 / (fan_in + fan_out)). block3_conv1 at width 0.25: 3x3x32 -> 64.
    keras.utils.set_random_seed(0)
    he = vgg.build_vgg16_classifier((32, 32, 3), 5, width=0.25, init="he")
    glorot = vgg.build_vgg16_classifier((32, 32, 3), 5, width=0.25)
    fan_in, fan_out = 3 * 3 * 32, 3 * 3 * 64
    k_he = he.get_layer("vgg16").get_layer("block3_conv1").kernel.numpy()
    k_gl = glorot.get_layer("vgg16").get_layer("block3_conv1").kernel.numpy()
    assert np.std(k_he) == pytest.approx(np.sqrt(2 / fan_in), rel=0.05)
    assert np.std(k_gl) == pytest.approx(np.sqrt(2 / (fan_in + fan_out)), rel=0.05)
    assert np.std(he.get_layer("fc1").kernel.numpy()) == pytest.approx(np.sqrt(2 / 128), rel=0.05)
    # inputs: minus the ImageNet mean, divided by its sd under "he"; only the mean under "glorot"
    x = np.array([[[[123.68 + 58.395, 116.779, 103.939 - 2 * 57.375]]]], np.float32)
    np.testing.assert_allclose(
        he.get_layer("imagenet_mean")(x).numpy(), [[[[1, 0, -2]]]], atol=1e-5
    )
    np.testing.assert_allclose(
        glorot.get_layer("imagenet_mean")(x).numpy(), [[[[58.395, 0, -114.75]]]], rtol=1e-5
    )
    # full width goes through keras.applications.VGG16 and gets the He kernels too
    full = vgg.build_vgg16_classifier((32, 32, 3), 2, width=1.0, init="he")
    k = full.get_layer("vgg16").get_layer("block2_conv1").kernel.numpy()  # 3x3x64 -> 128
    assert np.std(k) == pytest.approx(np.sqrt(2 / (9 * 64)), rel=0.05)
    # loaded weights expect unscaled input: "he" with them is refused
    base = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    base.save_weights(tmp_path / "w.weights.h5")
    with pytest.raises(ValueError, match="init='he' is for random initialization"):
        vgg.build_vgg16_classifier(
            (32, 32, 3), 2, weights=str(tmp_path / "w.weights.h5"), init="he"
        )
    with pytest.raises(ValueError, match="init must be one of glorot, he"):
        vgg.build_vgg16_classifier((32, 32, 3), 2, width=0.0625, init="lecun")


def test_batch_norm_is_vgg16_bn_with_the_same_taps(tmp_path):
    m = vgg.build_vgg16_classifier(
        (32, 32, 3), 5, width=0.0625, batch_norm=True, loss_estimator=True
    )
    base = m.get_layer("vgg16")
    bns = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
    convs = [layer for layer in base.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(bns) == 13 and len(convs) == 13 and not any(c.use_bias for c in convs)
    # each tap is the ReLU after its convolution's batch norm
    for tap in vgg.ESTIMATOR_TAPS:
        assert isinstance(base.get_layer(tap), keras.layers.ReLU)
        assert base.get_layer(tap).input is base.get_layer(f"{tap}_bn").output
    # 13 BN layers of 4 x filters parameters each, minus the 13 conv biases
    plain = vgg.build_vgg16_classifier((32, 32, 3), 5, width=0.0625, loss_estimator=True)
    filters = [max(1, round(f * 0.0625)) for f, n in vgg.BLOCKS for _ in range(n)]
    assert m.count_params() - plain.count_params() == sum(4 * f - f for f in filters)
    # inference uses the moving statistics: a reloaded model predicts the same
    x = np.random.default_rng(2).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    m.save(tmp_path / "bn.keras")
    np.testing.assert_allclose(
        keras.saving.load_model(tmp_path / "bn.keras").predict(x, verbose=0),
        m.predict(x, verbose=0),
        rtol=1e-5,
        atol=1e-6,
    )
    base_w = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    base_w.save_weights(tmp_path / "w.weights.h5")
    with pytest.raises(ValueError, match="VGG-16-BN"):
        vgg.build_vgg16_classifier(
            (32, 32, 3), 2, weights=str(tmp_path / "w.weights.h5"), batch_norm=True
        )
