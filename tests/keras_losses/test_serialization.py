"""Every loss round-trips through get_config and through a saved .keras model."""

import inspect

import keras
import numpy as np
import pytest

import keras_losses as kl

SEGMENTATION = [
    lambda: kl.GeneralizedLoss(0.7, 1.3, 2.0, per_image=True, smooth=0.5),
    lambda: kl.DiceLoss(),
    lambda: kl.EffectivenessLoss(beta2=3.0),
    lambda: kl.TverskyLoss(alpha=0.3, beta=0.7),
    lambda: kl.SquaredDiceLoss(per_image=False),
    lambda: kl.BinaryFocalLoss(alpha=0.4, gamma=1.5, apply_class_balancing=True),
    lambda: kl.CombinedLoss(
        [keras.losses.BinaryCrossentropy(), kl.SquaredDiceLoss(), kl.BinaryFocalLoss()],
        [1.0, 1.0, 0.5],
    ),
    lambda: kl.FocalTverskyLoss(),
    lambda: kl.JaccardLoss(),
    lambda: kl.GeneralizedDiceLoss(),
    lambda: kl.ExpLogLoss(),
    lambda: kl.ComboLoss(),
    lambda: kl.DiceCELoss(),
    lambda: kl.DiceFocalLoss(),
    lambda: kl.UnifiedFocalLoss(),
    lambda: kl.AsymmetricFocalTverskyLoss(),
    lambda: kl.BinaryCrossentropyLoss(pos_weight=2.0),
    lambda: kl.TopKCrossEntropyLoss(k=20.0),
    lambda: kl.DiceTopKLoss(),
    lambda: kl.SensitivitySpecificityLoss(),
    lambda: kl.AsymmetricSimilarityLoss(),
    lambda: kl.LovaszSoftmaxLoss(),
    lambda: kl.LovaszHingeLoss(),
]
ALL = SEGMENTATION + [
    lambda: kl.ContrastiveLoss(margin=2.0),
    lambda: kl.MarginRankingLoss(margin=0.5),
    lambda: kl.LossEstimatorLoss(
        lambda_=0.25, class_weights=[1.0, 2.0], rank_target="weighted-ce", pair_reduction="sum"
    ),
    lambda: kl.ClassWeightedCategoricalCrossentropy([1.0, 2.0, 3.0]),
]


# Every constructor argument of every loss, each given a value other than its default, so that
# an argument get_config forgets (or stores wrongly) shows up as a missing or different key.
# The input convention shared by every overlap loss, each argument away from its default.
CONVENTION = dict(
    from_logits=True,
    activation="softmax",
    include_background=False,
    ignore_class=255,
    class_weights=[0.0, 1.0, 2.0],
    class_reduction="pooled",
    smooth_nr=0.25,
    smooth_dr=0.125,
    reduction="sum",
)
PIXEL = dict(from_logits=True, include_background=False, ignore_class=255, reduction="sum")
CONSTRUCTED = [
    (
        kl.GeneralizedLoss,
        dict(alpha_p=0.7, alpha_n=1.3, beta2=2.0, per_image=True, smooth=0.5, **CONVENTION),
    ),
    (kl.DiceLoss, dict(per_image=True, smooth=0.5, **CONVENTION)),
    (kl.EffectivenessLoss, dict(beta2=3.0, per_image=True, smooth=0.5, **CONVENTION)),
    (kl.TverskyLoss, dict(alpha=0.3, beta=0.6, per_image=True, smooth=0.25, **CONVENTION)),
    (
        kl.FocalTverskyLoss,
        dict(alpha=0.4, beta=0.6, gamma=1.5, per_image=True, smooth=0.5, **CONVENTION),
    ),
    (
        kl.SquaredDiceLoss,
        dict(per_image=not kl.SquaredDiceLoss().per_image, smooth=0.5, **CONVENTION),
    ),
    (kl.JaccardLoss, dict(per_image=True, smooth=0.5, **CONVENTION)),
    (kl.GeneralizedDiceLoss, dict(weighting="simple", per_image=True, smooth=0.5, **CONVENTION)),
    (
        kl.ExpLogLoss,
        dict(
            w_dice=0.5,
            w_ce=0.5,
            gamma_dice=0.5,
            gamma_ce=0.4,
            label_weights=[1.0, 2.0, 3.0],
            per_image=True,
            smooth=0.5,
            **CONVENTION,
        ),
    ),
    (kl.ComboLoss, dict(alpha=0.3, beta=0.7, per_image=True, smooth=0.5, **CONVENTION)),
    (kl.DiceCELoss, dict(lambda_dice=0.5, lambda_ce=2.0, per_image=True, smooth=0.5, **CONVENTION)),
    (
        kl.DiceFocalLoss,
        dict(
            lambda_dice=0.5,
            lambda_focal=2.0,
            gamma=1.0,
            alpha=[0.2, 0.3, 0.5],
            per_image=True,
            smooth=0.5,
            **CONVENTION,
        ),
    ),
    (kl.SymmetricFocalLoss, dict(delta=0.6, gamma=1.0, per_image=True, smooth=0.5, **CONVENTION)),
    (kl.AsymmetricFocalLoss, dict(delta=0.6, gamma=1.0, per_image=True, smooth=0.5, **CONVENTION)),
    (
        kl.SymmetricFocalTverskyLoss,
        dict(delta=0.6, gamma=0.5, per_image=True, smooth=0.5, **CONVENTION),
    ),
    (
        kl.AsymmetricFocalTverskyLoss,
        dict(delta=0.6, gamma=0.5, per_image=True, smooth=0.5, **CONVENTION),
    ),
    (
        kl.UnifiedFocalLoss,
        dict(
            weight=0.3,
            delta=0.7,
            gamma=0.4,
            asymmetric=False,
            per_image=True,
            smooth=0.5,
            **CONVENTION,
        ),
    ),
    (
        kl.BinaryFocalLoss,
        dict(alpha=0.4, gamma=1.5, apply_class_balancing=True, activation="sigmoid", **PIXEL),
    ),
    (kl.BinaryCrossentropyLoss, dict(pos_weight=2.0, activation="sigmoid", **PIXEL)),
    (
        kl.CategoricalCrossentropyLoss,
        dict(class_weights=[1.0, 2.0, 0.0], activation="softmax", **PIXEL),
    ),
    (
        kl.CategoricalFocalLoss,
        dict(alpha=[0.2, 0.3, 0.5], gamma=1.0, activation="softmax", **PIXEL),
    ),
    (kl.TopKCrossEntropyLoss, dict(k=20.0, per_image=True, activation="softmax", **PIXEL)),
    (kl.DiceTopKLoss, dict(k=20.0, smooth=0.5, activation="softmax", **PIXEL)),
    (
        kl.SensitivitySpecificityLoss,
        dict(r=0.2, smooth=1e-3, per_image=True, activation="softmax", **PIXEL),
    ),
    (kl.AsymmetricSimilarityLoss, dict(beta=2.0, per_image=True, smooth=0.5, **CONVENTION)),
    (kl.LovaszSoftmaxLoss, dict(classes="all", per_image=True, activation="softmax", **PIXEL)),
    (kl.LovaszHingeLoss, dict(per_image=False, activation="sigmoid", **PIXEL)),
    (kl.OneSidedHausdorffDTLoss, dict(alpha=1.0, activation="softmax", **PIXEL)),
    (
        kl.BoundaryLoss,
        dict(
            include_background=True,
            from_logits=True,
            ignore_class=255,
            reduction="sum",
            activation="softmax",
        ),
    ),
    (
        kl.DiceBoundaryLoss,
        dict(
            alpha=0.5,
            smooth=0.5,
            include_background=True,
            from_logits=True,
            ignore_class=255,
            reduction="sum",
            activation="softmax",
        ),
    ),
    (
        kl.CombinedLoss,
        dict(losses=[kl.SquaredDiceLoss(), kl.BinaryFocalLoss()], weights=[1.0, 0.5]),
    ),
    (kl.ContrastiveLoss, dict(margin=2.0)),
    (kl.MarginRankingLoss, dict(margin=0.5, pair_reduction="sum")),
    (
        kl.LossEstimatorLoss,
        dict(
            lambda_=0.25,
            margin=0.5,
            class_weights=[1.0, 2.0],
            rank_target="weighted-ce",
            pair_reduction="sum",
        ),
    ),
    (
        kl.ClassWeightedCategoricalCrossentropy,
        dict(class_weights=[1.0, 2.0, 3.0], normalization="samples"),
    ),
]
NOT_STORED = {"self", "kwargs", "dtype"}  # dtype: the base class's, stored as a policy


def constructor_parameters(cls) -> dict:
    """The parameters of ``cls.__init__`` and of the library base classes it forwards
    ``**kwargs`` to (the most derived default wins)."""
    found = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__.startswith("keras_losses") and "__init__" in vars(klass):
            found.update(inspect.signature(klass.__init__).parameters)
    return found


@pytest.mark.parametrize("cls, arguments", CONSTRUCTED, ids=[c.__name__ for c, _ in CONSTRUCTED])
def test_get_config_holds_every_constructor_argument(cls, arguments):
    parameters = constructor_parameters(cls)
    expected = set(parameters) - NOT_STORED
    assert set(arguments) | {"name"} == expected  # the table covers every argument
    for key, value in arguments.items():
        assert value != parameters[key].default, key  # non-default, so a lost value shows
    loss = cls(**arguments, name="custom_name")
    config = loss.get_config()
    assert expected <= set(config), expected - set(config)
    assert config["name"] == "custom_name"
    for key, value in arguments.items():
        if key == "losses":
            assert [keras.saving.deserialize_keras_object(c).get_config() for c in config[key]] == [
                v.get_config() for v in value
            ]
        else:
            assert list(config[key]) == value if isinstance(value, list) else config[key] == value
    clone = cls.from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is cls and restored.get_config() == config


def test_registered_under_one_package_name():
    for make in ALL:
        name = keras.saving.get_registered_name(type(make()))
        assert name.startswith("keras_losses>"), name


def tiny_segmenter():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(2, 3, padding="same", activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(x))


@pytest.mark.parametrize("make", SEGMENTATION)
def test_saved_model_reloads_without_custom_objects(make, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((4, 8, 8, 1)).astype("float32")
    y = (rng.random((4, 8, 8, 1)) > 0.7).astype("float32")
    model = tiny_segmenter()
    model.compile(optimizer="adam", loss=make())
    before = model.evaluate(x, y, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.loss) is type(model.loss)
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(before, rel=1e-5)


def test_glf_keeps_its_current_coefficients_through_save_and_load(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.random((4, 8, 8, 1)).astype("float32")
    y = (rng.random((4, 8, 8, 1)) > 0.7).astype("float32")
    loss = kl.GeneralizedLoss()
    model = tiny_segmenter()
    model.compile(optimizer="adam", loss=loss)
    model.fit(x, y, epochs=1, verbose=0)
    loss.set_coefficients(alpha_p=0.375, alpha_n=1.875, beta2=2.25)  # as an adaptive rule would
    before = model.evaluate(x, y, verbose=0)
    model.save(tmp_path / "glf.keras")
    loaded = keras.saving.load_model(tmp_path / "glf.keras")
    assert loaded.loss.coefficients == {"alpha_p": 0.375, "alpha_n": 1.875, "beta2": 2.25}
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(before, rel=1e-5)


def test_assigned_coefficients_take_effect_in_the_compiled_step():
    rng = np.random.default_rng(2)
    x = rng.random((4, 8, 8, 1)).astype("float32")
    y = (rng.random((4, 8, 8, 1)) > 0.7).astype("float32")
    loss = kl.GeneralizedLoss()
    model = tiny_segmenter()
    # loss.state compiled: the step carries the coefficients (under JAX too)
    model.compile(optimizer="adam", loss=loss, metrics=[loss.state])
    dice = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]  # traced with alpha_p = 1
    loss.set_coefficients(alpha_p=5.0)
    heavier = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    p = model.predict(x, verbose=0)
    expected = float(kl.GeneralizedLoss(alpha_p=5.0)(y, p))
    assert heavier == pytest.approx(expected, rel=1e-5) and heavier > dice


@pytest.mark.parametrize("make", ALL[len(SEGMENTATION) : len(SEGMENTATION) + 2])
def test_pairwise_losses_in_a_saved_model(make, tmp_path):
    rng = np.random.default_rng(3)
    x = rng.random((6, 5)).astype("float32")
    y = (
        rng.integers(0, 2, 6).astype("float32")
        if isinstance(make(), kl.ContrastiveLoss)
        else rng.random(6).astype("float32")
    )
    inputs = keras.Input((5,))
    out = keras.layers.Dense(3 if isinstance(make(), kl.ContrastiveLoss) else 1)(inputs)
    model = keras.Model(inputs, out)
    model.compile(optimizer="adam", loss=make())
    before = model.evaluate(x, y, batch_size=6, verbose=0)
    model.save(tmp_path / "p.keras")
    loaded = keras.saving.load_model(tmp_path / "p.keras")
    assert loaded.evaluate(x, y, batch_size=6, verbose=0) == pytest.approx(before, rel=1e-5)
