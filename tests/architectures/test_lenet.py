"""LeNet-5 encoder f, head g and classifier g(f(x)): shapes, freezing, saving."""

import keras
import numpy as np
import pytest

import keras_losses
from architectures.lenet import ENCODER_VARIANTS, build_classifier, build_encoder, encoder_of


def test_shapes_at_tiny_size():
    encoder = build_encoder((32, 32, 1))
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 1)).astype("float32")
    assert encoder(x).shape == (3, 84)
    model = build_classifier(build_encoder((32, 32, 1), embedding_dim=10))
    probs = keras.ops.convert_to_numpy(model(x))
    assert probs.shape == (3, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # LeNet-5 layers: conv 6 and 16 filters of 5x5, dense 120 and 84.
    assert [layer.name for layer in encoder.layers if layer.weights] == ["conv1", "conv2", "fc1", "embedding"]
    assert encoder.get_layer("conv1").kernel.shape == (5, 5, 1, 6)
    assert encoder.get_layer("fc1").units == 120
    # At LeNet-5's native 32x32, C5 sees S4's 5x5x16 maps (the 1998 5x5 convolution).
    assert encoder.get_layer("fc1").kernel.shape == (5 * 5 * 16, 120)


@pytest.mark.parametrize(
    "variant, activation, pooling",
    [("classic", "tanh", "AveragePooling2D"), ("modern", "relu", "MaxPooling2D")],
)
def test_variants_differ_in_activation_and_pooling_only(variant, activation, pooling):
    encoder = build_encoder((32, 32, 1), variant=variant)
    for name in ("conv1", "conv2", "fc1", "embedding"):
        assert encoder.get_layer(name).activation.__name__ == activation
    assert [type(encoder.get_layer(n)).__name__ for n in ("pool1", "pool2")] == [pooling, pooling]
    assert encoder.count_params() == build_encoder((32, 32, 1), variant="modern").count_params()


def test_classic_is_the_default_and_bounded():
    # tanh units: the embedding lies in [-1, 1] whatever the input.
    assert build_encoder((32, 32, 1)).get_layer("pool1").__class__.__name__ == "AveragePooling2D"
    assert build_classifier().get_layer("encoder").get_layer("conv1").activation.__name__ == "tanh"
    x = np.random.default_rng(2).uniform(0, 255, (5, 32, 32, 1)).astype("float32")
    emb = keras.ops.convert_to_numpy(build_encoder((32, 32, 1))(x))
    assert np.abs(emb).max() <= 1.0


def test_average_pooling_averages():
    # S2 of the classic encoder is the mean of each 2x2 block of C1's output.
    encoder = build_encoder((32, 32, 1))
    x = np.random.default_rng(3).uniform(0, 255, (2, 32, 32, 1)).astype("float32")
    c1 = keras.Model(encoder.input, encoder.get_layer("conv1").output)(x)
    s2 = keras.Model(encoder.input, encoder.get_layer("pool1").output)(x)
    c1, s2 = keras.ops.convert_to_numpy(c1), keras.ops.convert_to_numpy(s2)
    expected = c1.reshape(2, 14, 2, 14, 2, 6).mean(axis=(2, 4))
    np.testing.assert_allclose(s2, expected, rtol=1e-5, atol=1e-6)


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="variant must be one of.*'lenet4'"):
        build_encoder((32, 32, 1), variant="lenet4")
    assert sorted(ENCODER_VARIANTS) == ["classic", "modern"]


def test_too_small_input_is_refused():
    with pytest.raises(ValueError, match="at least 16x16"):
        build_encoder((8, 8, 1))


def test_frozen_encoder_leaves_only_the_head_trainable():
    model = build_classifier(build_encoder((32, 32, 1)), train_encoder=False)
    head = model.get_layer("head").get_layer("probs")
    assert [id(w) for w in model.trainable_weights] == [id(head.kernel), id(head.bias)]
    assert len(model.non_trainable_weights) == 8


# These models are compiled but never trained, so Keras warns that the saved (unbuilt)
# optimizer has fewer variables than the one it builds; runs save trained models, or
# assembled ones uncompiled (tasks/nodules/training.py), so a user never sees it.
@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer:UserWarning")
def test_saved_models_reload_with_plain_load_model(tmp_path):
    # The siamese encoder is compiled with the contrastive loss: reloading needs nothing but
    # `import keras_losses` (done above), no custom_objects.
    x = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 1)).astype("float32")
    encoder = build_encoder((32, 32, 1))
    encoder.compile(optimizer="adam", loss=keras_losses.ContrastiveLoss(margin=1.0))
    encoder.save(tmp_path / "encoder.keras")
    restored = keras.saving.load_model(tmp_path / "encoder.keras")
    np.testing.assert_allclose(restored.predict(x, verbose=0), encoder.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert isinstance(restored.loss, keras_losses.ContrastiveLoss) and restored.loss.margin == 1.0

    model = build_classifier(restored, train_encoder=False)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.save(tmp_path / "classifier.keras")
    again = keras.saving.load_model(tmp_path / "classifier.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        encoder_of(again).predict(x, verbose=0), encoder.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    assert not encoder_of(again).trainable


def test_encoder_of_rejects_other_models():
    inputs = keras.Input((4,))
    other = keras.Model(inputs, keras.layers.Dense(2, name="out")(inputs))
    with pytest.raises(ValueError, match="'encoder'"):
        encoder_of(other)


def test_head_init_zeros_starts_at_the_uniform_prediction():
    from architectures.lenet import build_head

    x = np.random.default_rng(1).uniform(-1, 1, (5, 84)).astype("float32")
    zeros = build_head(init="zeros")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(zeros(x)), np.full((5, 2), 0.5, np.float32))
    # Glorot (the default) draws the kernel uniformly within sqrt(6 / (fan_in + fan_out)).
    kernel = keras.ops.convert_to_numpy(build_head().get_layer("probs").kernel)
    assert 0 < np.abs(kernel).max() <= np.sqrt(6 / (84 + 2))
    # The classifier passes the choice to its head.
    head = build_classifier(build_encoder((32, 32, 1)), head_init="zeros").get_layer("head")
    assert not keras.ops.convert_to_numpy(head.get_layer("probs").kernel).any()
    with pytest.raises(ValueError, match="head init must be one of glorot, zeros; received 'he'"):
        build_head(init="he")


def test_sigmoid_head_is_one_logit_returned_as_two_probabilities(tmp_path):
    from architectures.lenet import build_head, class_scores

    head = build_head(10, output="sigmoid")
    assert [layer.name for layer in head.layers if layer.weights] == ["logit"]
    assert head.get_layer("logit").kernel.shape == (10, 1)
    model = build_classifier(build_encoder((32, 32, 1), embedding_dim=10), head_output="sigmoid")
    x = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 1)).astype("float32")
    probs = keras.ops.convert_to_numpy(model(x))
    z = keras.ops.convert_to_numpy(class_scores(model, x))  # (4, 1): the malignant logit
    assert probs.shape == (4, 2) and z.shape == (4, 1)
    np.testing.assert_allclose(probs[:, 1], 1 / (1 + np.exp(-z[:, 0])), rtol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    # sparse CE on the two columns is Eq. (1)'s binary cross-entropy on f(X) = sigmoid(z)
    y = np.array([1, 0, 1, 0])
    ce = keras.ops.convert_to_numpy(keras.losses.SparseCategoricalCrossentropy()(y, probs))
    bce = keras.ops.convert_to_numpy(keras.losses.BinaryCrossentropy()(y[:, None], probs[:, 1:]))
    np.testing.assert_allclose(ce, bce, rtol=1e-5)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(again(x)), probs, rtol=1e-6)
    with pytest.raises(ValueError, match="head output"):
        build_head(output="tanh")


def test_class_scores_of_a_softmax_head_are_its_logits():
    from architectures.lenet import class_scores

    model = build_classifier(build_encoder((32, 32, 1), embedding_dim=10))
    x = np.random.default_rng(2).uniform(0, 255, (3, 32, 32, 1)).astype("float32")
    s = keras.ops.convert_to_numpy(class_scores(model, x))
    p = keras.ops.convert_to_numpy(model(x))
    np.testing.assert_allclose(np.exp(s) / np.exp(s).sum(axis=1, keepdims=True), p, rtol=1e-5)
