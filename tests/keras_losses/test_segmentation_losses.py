"""TopK CE, sensitivity-specificity, asymmetric similarity, Lovász, boundary, one-sided
Hausdorff DT and their compounds: each against a numpy computation written from its formula
here, with a multi-class case, a mask case and a serialization round trip."""

import math

import keras
import numpy as np
import pytest

import keras_losses as kl
from keras_losses.distance_maps import signed_distance_maps

RNG = np.random.default_rng(7)


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def binary_case(batch=2, h=6, w=5, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random((batch, h, w, 1)) < 0.3).astype(np.float32)
    p = rng.uniform(0.02, 0.98, (batch, h, w, 1)).astype(np.float32)
    return y, p


def multi_case(batch=2, h=6, w=5, c=3, seed=1):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, c, (batch, h, w))
    y = np.eye(c, dtype=np.float32)[ids]
    p = softmax(rng.normal(size=(batch, h, w, c))).astype(np.float32)
    return ids, y, p


def mask_of(shape, seed=2):
    return (np.random.default_rng(seed).random(shape) < 0.7).astype(np.float32)  # (batch, h, w)


def value(loss, y, p, **kw):
    return float(keras.ops.convert_to_numpy(loss(y, p, **kw)))


# ------------------------------------------------------------------------ numpy references
def ce_ref(y, p):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    if p.shape[-1] == 1:
        return -(y * np.log(p) + (1 - y) * np.log(1 - p))[..., 0]
    return -(y * np.log(p)).sum(-1)


def topk_ref(y, p, k, mask=None, per_image=False):
    ce = ce_ref(y, p)
    m = np.ones_like(ce) if mask is None else mask
    rows = [(ce[i] * m[i])[m[i] > 0] for i in range(len(ce))] if per_image else [(ce * m)[m > 0]]
    out = [np.sort(r)[::-1][: max(1, math.ceil(k / 100 * r.size))].mean() for r in rows]
    return float(np.mean(out))


def ss_ref(y, p, r, s, mask=None):
    m = np.ones(y.shape[:-1] + (1,)) if mask is None else mask[..., None]
    axes = (0, 1, 2)
    sq = (y - p) ** 2 * m
    sens = (sq * y).sum(axes) / ((y * m).sum(axes) + s)
    spec = (sq * (1 - y)).sum(axes) / (((1 - y) * m).sum(axes) + s)
    return float(np.mean(r * sens + (1 - r) * spec))


def fbeta_ref(y, p, beta, s, mask=None):
    m = np.ones(y.shape[:-1] + (1,)) if mask is None else mask[..., None]
    tp = (p * y * m).sum((0, 1, 2))
    fp = (p * (1 - y) * m).sum((0, 1, 2))
    fn = ((1 - p) * y * m).sum((0, 1, 2))
    b2 = beta**2
    return float(np.mean(1 - ((1 + b2) * tp + s) / ((1 + b2) * tp + b2 * fn + fp + s)))


def lovasz_row(errors, labels):
    """Berman et al., Algorithm 1, written out for one row."""
    order = np.argsort(-errors, kind="stable")
    e, g = errors[order], labels[order]
    gts = g.sum()
    jac = 1 - (gts - np.cumsum(g)) / (gts + np.cumsum(1 - g))
    grad = np.diff(np.concatenate([[0.0], jac]))
    return float(e @ grad)


def lovasz_softmax_ref(y, p, mask=None, per_image=False):
    m = np.ones(y.shape[:-1]) if mask is None else mask
    images = range(len(y)) if per_image else [slice(None)]
    out = []
    for i in images:
        yi, pi, mi = y[i], p[i], m[i] > 0
        losses = [
            lovasz_row(np.abs(yi[..., c] - pi[..., c])[mi], yi[..., c][mi])
            for c in range(y.shape[-1])
            if yi[..., c][mi].sum() > 0
        ]
        out.append(np.mean(losses) if losses else 0.0)
    return float(np.mean(out))


def lovasz_hinge_ref(y, z, mask=None):
    m = np.ones(y.shape[:-1]) if mask is None else mask
    out = []
    for i in range(len(y)):
        yi, zi = y[i, ..., 0][m[i] > 0], z[i, ..., 0][m[i] > 0]
        errors = np.maximum(1 - (2 * yi - 1) * zi, 0)
        out.append(lovasz_row(errors, yi))
    return float(np.mean(out))


def maps_of(ids_or_y, c):
    return np.stack([signed_distance_maps(a, c) for a in ids_or_y])


def boundary_ref(y, phi, p, fg_only=True, mask=None):
    m = np.ones(y.shape[:-1] + (1,)) if mask is None else mask[..., None]
    if fg_only and y.shape[-1] > 1:
        phi, p = phi[..., 1:], p[..., 1:]
    per = (m * phi * p).sum((1, 2)) / m.sum((1, 2))  # (batch, C)
    return float(per.mean())


def hd_ref(y, phi, p, alpha=2.0, mask=None):
    m = np.ones(y.shape[:-1] + (1,)) if mask is None else mask[..., None]
    per = (m * (p - y) ** 2 * np.abs(phi) ** alpha).sum((1, 2)) / m.sum((1, 2))
    return float(per.mean())


# ------------------------------------------------------------------------ hand-computed cases
def test_docstring_examples_by_hand():
    y = np.array([[[[1.0], [0.0]], [[0.0], [0.0]]]])  # shape: (1, 2, 2, 1)
    p = np.array([[[[0.5], [0.5]], [[0.1], [0.1]]]])
    assert value(kl.TopKCrossEntropyLoss(k=50), y, p) == pytest.approx(math.log(2), rel=1e-5)
    assert value(kl.DiceTopKLoss(k=50, smooth=0.0), y, p) == pytest.approx(
        1 - 1 / 2.2 + math.log(2), rel=1e-5
    )
    p2 = np.array([[[[0.5], [0.5]], [[0.0], [0.0]]]])
    assert value(kl.SensitivitySpecificityLoss(r=0.5, smooth=0.0), y, p2) == pytest.approx(
        0.25 / 2 + 0.25 / 6
    )
    y3 = np.array([[[[1.0], [1.0]], [[0.0], [0.0]]]])
    p3 = np.array([[[[1.0], [0.0]], [[1.0], [0.0]]]])
    assert value(kl.AsymmetricSimilarityLoss(beta=2.0, smooth=0.0), y3, p3) == pytest.approx(0.5)
    y1 = np.array([[[[1.0], [0.0]]]])  # shape: (1, 1, 2, 1)
    assert value(kl.LovaszSoftmaxLoss(), y1, np.array([[[[0.6], [0.8]]]])) == pytest.approx(0.6)
    assert value(
        kl.LovaszHingeLoss(from_logits=True), y1, np.array([[[[0.5], [-2.0]]]])
    ) == pytest.approx(0.5)
    yb = np.array([[[[1.0, -1.0], [0.0, 1.0], [0.0, 2.0]]]])  # labels + phi, shape: (1, 1, 3, 2)
    pb = np.array([[[[1.0], [0.5], [0.0]]]])
    assert value(kl.BoundaryLoss(), yb, pb) == pytest.approx(-0.5 / 3)
    ph = np.array([[[[1.0], [0.5], [0.5]]]])
    assert value(kl.OneSidedHausdorffDTLoss(), yb, ph) == pytest.approx(1.25 / 3)


# ------------------------------------------------------------------------ against the references
@pytest.mark.parametrize("k", [10.0, 37.5, 100.0])
@pytest.mark.parametrize("per_image", [False, True])
def test_topk_binary_multiclass_mask(k, per_image):
    y, p = binary_case()
    loss = kl.TopKCrossEntropyLoss(k=k, per_image=per_image)
    assert value(loss, y, p) == pytest.approx(topk_ref(y, p, k, per_image=per_image), rel=1e-5)
    ids, ym, pm = multi_case()
    assert value(loss, ym, pm) == pytest.approx(topk_ref(ym, pm, k, per_image=per_image), rel=1e-5)
    assert value(loss, ids[..., None], pm) == pytest.approx(
        value(loss, ym, pm), rel=1e-6
    )  # sparse labels
    m = mask_of(ids.shape)
    assert value(loss, ym, pm, sample_weight=m) == pytest.approx(
        topk_ref(ym, pm, k, m, per_image), rel=1e-5
    )


def test_topk_100_is_cross_entropy():
    _, ym, pm = multi_case()
    ce = keras.losses.CategoricalCrossentropy()(ym, pm)
    assert value(kl.TopKCrossEntropyLoss(k=100), ym, pm) == pytest.approx(float(ce), rel=1e-5)


def test_topk_ignore_class_leaves_pixels_out():
    ids, ym, pm = multi_case()
    ids = ids.copy()
    ids[0, :2] = 9  # void
    keep = (ids != 9).astype(np.float32)
    ref = topk_ref(np.eye(3, dtype=np.float32)[np.where(ids == 9, 0, ids)], pm, 10.0, keep)
    assert value(kl.TopKCrossEntropyLoss(ignore_class=9), ids[..., None], pm) == pytest.approx(
        ref, rel=1e-5
    )


@pytest.mark.parametrize("r", [0.05, 0.5])
def test_sensitivity_specificity(r):
    y, p = binary_case()
    loss = kl.SensitivitySpecificityLoss(r=r)
    assert value(loss, y, p) == pytest.approx(ss_ref(y, p, r, 1e-5), rel=1e-5)
    _, ym, pm = multi_case()
    assert value(loss, ym, pm) == pytest.approx(ss_ref(ym, pm, r, 1e-5), rel=1e-5)
    m = mask_of(ym.shape[:-1])
    assert value(loss, ym, pm, sample_weight=m) == pytest.approx(
        ss_ref(ym, pm, r, 1e-5, m), rel=1e-5
    )


@pytest.mark.parametrize("beta", [1.0, 1.5, 3.0])
def test_asymmetric_similarity(beta):
    y, p = binary_case()
    loss = kl.AsymmetricSimilarityLoss(beta=beta)
    assert value(loss, y, p) == pytest.approx(fbeta_ref(y, p, beta, 1.0), rel=1e-5)
    _, ym, pm = multi_case()
    assert value(loss, ym, pm) == pytest.approx(fbeta_ref(ym, pm, beta, 1.0), rel=1e-5)
    m = mask_of(ym.shape[:-1])
    assert value(loss, ym, pm, sample_weight=m) == pytest.approx(
        fbeta_ref(ym, pm, beta, 1.0, m), rel=1e-5
    )


def test_asymmetric_similarity_special_cases():
    y, p = binary_case()
    assert value(kl.AsymmetricSimilarityLoss(beta=1.0), y, p) == pytest.approx(
        value(kl.DiceLoss(), y, p), rel=1e-6
    )
    effectiveness = kl.EffectivenessLoss(beta2=2.25)
    assert value(kl.AsymmetricSimilarityLoss(beta=1.5), y, p) == pytest.approx(
        value(effectiveness, y, p), rel=1e-6
    )


@pytest.mark.parametrize("per_image", [False, True])
def test_lovasz_softmax(per_image):
    loss = kl.LovaszSoftmaxLoss(per_image=per_image)
    y, p = binary_case()
    assert value(loss, y, p) == pytest.approx(
        lovasz_softmax_ref(y, p, per_image=per_image), rel=1e-5
    )
    _, ym, pm = multi_case()
    assert value(loss, ym, pm) == pytest.approx(
        lovasz_softmax_ref(ym, pm, per_image=per_image), rel=1e-5
    )
    m = mask_of(ym.shape[:-1])
    assert value(loss, ym, pm, sample_weight=m) == pytest.approx(
        lovasz_softmax_ref(ym, pm, m, per_image), rel=1e-5
    )


def test_lovasz_hinge():
    y, _ = binary_case()
    z = RNG.normal(size=y.shape).astype(np.float32)
    loss = kl.LovaszHingeLoss(from_logits=True)
    assert value(loss, y, z) == pytest.approx(lovasz_hinge_ref(y, z), rel=1e-5)
    m = mask_of(y.shape[:-1])
    assert value(loss, y, z, sample_weight=m) == pytest.approx(lovasz_hinge_ref(y, z, m), rel=1e-5)
    probs = 1 / (1 + np.exp(-z))
    assert value(kl.LovaszHingeLoss(), y, probs) == pytest.approx(lovasz_hinge_ref(y, z), rel=1e-4)
    with pytest.raises(ValueError, match="one channel"):
        loss(np.zeros((1, 2, 2, 3)), np.zeros((1, 2, 2, 3)))


def test_boundary_and_hausdorff_binary_multiclass_mask():
    y, p = binary_case()
    phi = maps_of(y, 1)
    packed = np.concatenate([y, phi], -1)
    assert value(kl.BoundaryLoss(), packed, p) == pytest.approx(boundary_ref(y, phi, p), rel=1e-5)
    assert value(kl.OneSidedHausdorffDTLoss(), packed, p) == pytest.approx(
        hd_ref(y, phi, p), rel=1e-5
    )
    ids, ym, pm = multi_case()
    phim = maps_of(ids[..., None], 3)
    sparse = np.concatenate([ids[..., None].astype(np.float32), phim], -1)
    onehot = np.concatenate([ym, phim], -1)
    for packed_m in (sparse, onehot):
        assert value(kl.BoundaryLoss(), packed_m, pm) == pytest.approx(
            boundary_ref(ym, phim, pm), rel=1e-5
        )
        assert value(kl.OneSidedHausdorffDTLoss(alpha=1.0), packed_m, pm) == pytest.approx(
            hd_ref(ym, phim, pm, 1.0), rel=1e-5
        )
    assert value(kl.BoundaryLoss(include_background=True), onehot, pm) == pytest.approx(
        boundary_ref(ym, phim, pm, fg_only=False), rel=1e-5
    )
    m = mask_of(ids.shape)
    assert value(kl.BoundaryLoss(), onehot, pm, sample_weight=m) == pytest.approx(
        boundary_ref(ym, phim, pm, mask=m), rel=1e-5
    )
    assert value(kl.OneSidedHausdorffDTLoss(), onehot, pm, sample_weight=m) == pytest.approx(
        hd_ref(ym, phim, pm, mask=m), rel=1e-5
    )


def test_boundary_loss_is_lowest_at_the_label():
    ids, ym, _ = multi_case()
    packed = np.concatenate([ym, maps_of(ids[..., None], 3)], -1)
    exact = value(kl.BoundaryLoss(), packed, ym)
    for seed in range(3):
        other = softmax(np.random.default_rng(seed).normal(size=ym.shape)).astype(np.float32)
        assert value(kl.BoundaryLoss(), packed, other) > exact


def test_dice_boundary_and_rebalancing():
    ids, ym, pm = multi_case()
    packed = np.concatenate([ym, maps_of(ids[..., None], 3)], -1)
    loss = kl.DiceBoundaryLoss()
    dice = value(kl.DiceLoss(include_background=False), ym, pm)
    boundary = boundary_ref(ym, packed[..., 3:], pm)
    assert value(loss, packed, pm) == pytest.approx(dice, rel=1e-5)  # alpha starts at 1
    schedule = kl.BoundaryRebalancing(loss)
    assert [round(schedule.value(e), 6) for e in (0, 1, 50, 98, 99, 500)] == [
        1.0,
        0.99,
        0.5,
        0.02,
        0.01,
        0.01,
    ]
    schedule.on_epoch_begin(30)
    assert value(loss, packed, pm) == pytest.approx(0.7 * dice + 0.3 * boundary, rel=1e-5)
    with pytest.raises(ValueError, match="DiceBoundaryLoss"):
        kl.BoundaryRebalancing(kl.DiceLoss())


def test_distance_map_losses_refuse_labels_without_maps():
    _, ym, pm = multi_case()
    with pytest.raises(ValueError, match="distance-map"):
        kl.BoundaryLoss()(ym, pm)


def test_rebalancing_reaches_the_compiled_loss_in_fit(tmp_path):
    """alpha set by the callback is the one the compiled train step uses (TF backend)."""
    x = np.zeros((4, 8, 8, 1), np.float32)
    ids = np.zeros((4, 8, 8, 1))
    ids[:, 2:5, 2:5] = 1
    y = np.concatenate([ids, maps_of(ids, 1)], -1).astype(np.float32)
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs))
    loss = kl.DiceBoundaryLoss()
    model.compile("adam", loss)
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(round(float(loss.alpha.numpy()), 6))

    model.fit(
        x, y, epochs=3, verbose=0, callbacks=[kl.BoundaryRebalancing(loss, step=0.25), Record()]
    )
    assert seen == [1.0, 0.75, 0.5]


# ------------------------------------------------------------------------ serialization
LOSSES = [
    kl.TopKCrossEntropyLoss(k=20, per_image=True),
    kl.DiceTopKLoss(k=5, smooth=0.5),
    kl.SensitivitySpecificityLoss(r=0.2, smooth=1e-3),
    kl.AsymmetricSimilarityLoss(beta=2.0),
    kl.LovaszSoftmaxLoss(classes="all", per_image=True),
    kl.LovaszHingeLoss(per_image=False),
    kl.BoundaryLoss(include_background=True),
    kl.DiceBoundaryLoss(alpha=0.5),
    kl.OneSidedHausdorffDTLoss(alpha=1.0),
]


@pytest.mark.parametrize("loss", LOSSES, ids=lambda x: type(x).__name__)
def test_serialization_round_trip(loss):
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()
    ids, ym, pm = multi_case()
    needs_maps = isinstance(
        loss, (kl.BoundaryLoss, kl.DiceBoundaryLoss, kl.OneSidedHausdorffDTLoss)
    )
    if isinstance(loss, kl.LovaszHingeLoss):
        y, p = binary_case()
    else:
        y, p = ym, pm
    if needs_maps:
        y = np.concatenate([y, maps_of(ids[..., None], 3)], -1)
    assert value(restored, y, p) == pytest.approx(value(loss, y, p), rel=1e-6)


def test_saved_model_round_trip(tmp_path):
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1, activation="softmax")(inputs))
    model.compile("adam", kl.DiceTopKLoss())
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(restored.loss, kl.DiceTopKLoss)


JAX_SCRIPT = """
import json, os, sys
os.environ["KERAS_BACKEND"] = "jax"
sys.path.insert(0, sys.argv[1])
import numpy as np, keras
import keras_losses as kl
from keras_losses.distance_maps import signed_distance_maps
x = np.random.default_rng(0).random((4, 8, 8, 1)).astype("float32")
ids = np.zeros((4, 8, 8, 1)); ids[:, 2:5, 2:5] = 1
y = np.concatenate([ids, np.stack([signed_distance_maps(i, 1) for i in ids])], -1).astype("float32")
inputs = keras.Input((8, 8, 1))
model = keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs))
loss = kl.DiceBoundaryLoss()
model.compile(keras.optimizers.SGD(1e-4), loss)
h = model.fit(x, y, epochs=3, batch_size=4, verbose=0, callbacks=[kl.BoundaryRebalancing(loss, step=0.5)])
p = model.predict(x, verbose=0)
eager = [float(kl.DiceBoundaryLoss(alpha=a)(y, p)) for a in (1.0, 0.5, 0.01)]
print(json.dumps({"backend": keras.backend.backend(), "fit": h.history["loss"], "eager": eager}))
"""


def test_rebalancing_reaches_the_train_step_under_jax(tmp_path):
    """Under JAX the compiled step does not carry the loss's variables: the callback retraces
    it, so each epoch's loss is the one at that epoch's alpha (1, 0.5, 0.01)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("jax")
    script = tmp_path / "jax_alpha.py"
    script.write_text(JAX_SCRIPT)
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, str(script), root], capture_output=True, text=True, env=env, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["backend"] == "jax"
    assert result["fit"] == pytest.approx(result["eager"], rel=1e-3)
