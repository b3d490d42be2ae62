"""Every segmentation loss in compiled training on the running backend, under mixed precision,
and the checks that act inside a compiled step.

Run under each backend: ``KERAS_BACKEND=jax python -m pytest tests/keras_losses``; the values
the other tests compare with numpy references are the same on every backend.
"""

import keras
import numpy as np
import pytest

import keras_losses as kl

# (name, factory, channels, label kind): sigmoid one-channel losses get a binary mask, softmax
# losses an integer label map of 3 classes.
LOSSES = [
    ("Dice", lambda: kl.DiceLoss(), 1),
    ("Dice3", lambda: kl.DiceLoss(include_background=False, class_weights=[1.0, 2.0]), 3),
    ("SquaredDice", lambda: kl.SquaredDiceLoss(), 1),
    ("Tversky", lambda: kl.TverskyLoss(0.3, 0.7), 3),
    ("Effectiveness", lambda: kl.EffectivenessLoss(2.0, per_image=True), 1),
    ("FocalTversky", lambda: kl.FocalTverskyLoss(), 3),
    ("Jaccard", lambda: kl.JaccardLoss(), 3),
    ("GeneralizedDice", lambda: kl.GeneralizedDiceLoss(), 3),
    ("ExpLog", lambda: kl.ExpLogLoss(), 3),
    ("Combo", lambda: kl.ComboLoss(), 1),
    ("DiceCE", lambda: kl.DiceCELoss(), 3),
    ("DiceFocal", lambda: kl.DiceFocalLoss(), 1),
    ("SymmetricFocal", lambda: kl.SymmetricFocalLoss(), 1),
    ("AsymmetricFocal", lambda: kl.AsymmetricFocalLoss(), 3),
    ("SymmetricFocalTversky", lambda: kl.SymmetricFocalTverskyLoss(), 3),
    ("AsymmetricFocalTversky", lambda: kl.AsymmetricFocalTverskyLoss(), 1),
    ("UnifiedFocal", lambda: kl.UnifiedFocalLoss(), 3),
    ("BCE", lambda: kl.BinaryCrossentropyLoss(pos_weight=2.0), 1),
    ("CE", lambda: kl.CategoricalCrossentropyLoss([0.5, 1.0, 2.0]), 3),
    ("BinaryFocal", lambda: kl.BinaryFocalLoss(), 1),
    ("CategoricalFocal", lambda: kl.CategoricalFocalLoss(alpha=[0.2, 0.3, 0.5]), 3),
]
IDS = [name for name, _, _ in LOSSES]


def data(channels, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((4, 8, 8, 1)).astype("float32")
    if channels == 1:
        y = (x > 0.6).astype("float32")
    else:
        y = np.digitize(x[..., 0], [0.4, 0.7]).astype("int32")  # classes 0, 1, 2
    return x, y


def model(channels, logits=False):
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    activation = None if logits else ("sigmoid" if channels == 1 else "softmax")
    out = keras.layers.Conv2D(
        channels, 1, activation=activation, dtype="float32" if logits else None
    )(h)
    return keras.Model(inputs, out)


@pytest.mark.parametrize("name, make, channels", LOSSES, ids=IDS)
def test_compiled_fit_trains_and_its_loss_is_the_eager_value(name, make, channels):
    keras.utils.set_random_seed(0)
    x, y = data(channels)
    m = model(channels)
    m.compile(optimizer=keras.optimizers.Adam(0.01), loss=make())  # compiled step, no run_eagerly
    before = [w.copy() for w in m.get_weights()]
    history = m.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert any(not np.allclose(a, b) for a, b in zip(before, m.get_weights(), strict=True))
    eager = float(make()(y, m.predict(x, verbose=0)))
    assert m.evaluate(x, y, batch_size=4, verbose=0) == pytest.approx(eager, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("name, make, channels", LOSSES, ids=IDS)
def test_mixed_bfloat16_trains_and_equals_the_float32_loss(name, make, channels):
    keras.utils.set_random_seed(0)
    x, y = data(channels, seed=1)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        m = model(channels)
        m.compile(optimizer=keras.optimizers.Adam(0.01), loss=make())
        history = m.fit(x, y, batch_size=4, epochs=1, verbose=0)
        assert np.all(np.isfinite(history.history["loss"]))
        p = m.predict(x, verbose=0)  # bfloat16 outputs of the compiled model
        compiled = m.evaluate(x, y, batch_size=4, verbose=0)
    finally:
        keras.config.set_dtype_policy(previous)
    assert str(p.dtype) == "bfloat16"
    # the same bfloat16 values, given as they are and as float32: the loss computes in float32
    as_bf16 = float(make()(y, keras.ops.convert_to_tensor(p)))
    float32 = float(make()(y, np.asarray(p, dtype="float32")))
    assert as_bf16 == pytest.approx(float32, rel=1e-6, abs=1e-7)
    # inside the compiled step the outputs may stay unrounded (fused); bfloat16 keeps 3 digits
    assert compiled == pytest.approx(float32, rel=2e-3, abs=1e-5)


def test_a_logit_output_fails_the_compiled_step_with_the_fix():
    x, y = data(1)
    m = model(1, logits=True)
    m.compile(optimizer="adam", loss=kl.DiceLoss())
    with pytest.raises(Exception, match="from_logits=True"):
        m.fit(x, y, verbose=0)


def test_labels_out_of_range_fail_the_compiled_step():
    x, y = data(1)
    m = model(1)
    m.compile(optimizer="adam", loss=kl.DiceLoss())
    with pytest.raises(Exception, match=r"`y_true` must hold values in \[0, 1\]"):
        m.fit(x, 255 * y, verbose=0)


def test_from_logits_trains_a_linear_output():
    keras.utils.set_random_seed(0)
    x, y = data(3)
    m = model(3, logits=True)
    m.compile(optimizer=keras.optimizers.Adam(0.01), loss=kl.DiceCELoss(from_logits=True))
    history = m.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
