"""The exploratory adaptive-GLF search (Seo et al. 2021, Fig. 2a): the exact search against the
naive 27-copy reference, the closed-form candidate updates, saving, and the numeric floor."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_losses
from architectures.unet import build_unet
from keras_losses.adaptive import (
    ACTIONS,
    KEEP_ACTION,
    ExploratoryGLFModel,
    choose_action,
    glf_count_derivatives,
    prepare_adaptive_glf,
    tie_choice,
)
from keras_losses.generalized import glf_from_counts
from tests.keras_losses.conftest import needs_search_backend
from tests.keras_losses.test_adaptive import blobs, tiny_unet

# the search's own tests: TensorFlow and JAX (another backend is refused, see conftest)
pytestmark = needs_search_backend


def test_count_derivatives_match_finite_differences():
    # dL/dTP and dL/dFP with FN = sum(y) - TP, against central differences in float64
    tp, fp, y_sum, h = 12.0, 30.0, 20.0, 1e-5
    coeffs = np.array([[1.0, 1.0, 1.0], [0.5, 2.0, 1.5], [1.3, 0.7, 0.2]], "float32")
    d_tp, d_fp = (
        keras.ops.convert_to_numpy(d)
        for d in glf_count_derivatives(
            np.float32(tp), np.float32(fp), np.float32(y_sum - tp),
            coeffs[:, 0], coeffs[:, 1], coeffs[:, 2], 1e-6,
        )
    )
    glf = glf_from_counts
    for i, (ap, an, b2) in enumerate(coeffs.astype("float64")):
        def value(t, f, ap=ap, an=an, b2=b2):
            return glf(t, f, y_sum - t, ap, an, b2, 1e-6)

        numeric_tp = (value(tp + h, fp) - value(tp - h, fp)) / (2 * h)
        numeric_fp = (value(tp, fp + h) - value(tp, fp - h)) / (2 * h)
        np.testing.assert_allclose([d_tp[i], d_fp[i]], [numeric_tp, numeric_fp], rtol=1e-4)


@pytest.mark.parametrize(
    "make",
    [
        lambda: keras.optimizers.Adam(1e-2),
        lambda: keras.optimizers.Adam(1e-2, amsgrad=True),
        lambda: keras.optimizers.AdamW(1e-2, weight_decay=0.1),
        lambda: keras.optimizers.SGD(1e-2, momentum=0.9, nesterov=True),
        lambda: keras.optimizers.SGD(1e-2),
    ],
)
def test_closed_form_candidate_update_matches_the_optimizer(make):
    net = build_unet((16, 16, 1), depth=1, base_filters=2, batch_norm=False)
    model = ExploratoryGLFModel(net)
    model.compile(optimizer=make(), loss=keras_losses.GeneralizedLoss())
    variables = net.trainable_variables
    rng = np.random.default_rng(0)
    for _ in range(2):  # the second step has non-zero moments
        grads = [
            keras.ops.convert_to_tensor(rng.standard_normal(v.shape).astype("float32"))
            for v in variables
        ]
        if not model.optimizer.built:
            model.optimizer.build(variables)
        predicted = [
            keras.ops.convert_to_numpy(w) for w in model._candidate_weights(grads, variables)
        ]
        model.optimizer.apply(grads, variables)
        for p, v in zip(predicted, variables, strict=True):
            np.testing.assert_allclose(p, keras.ops.convert_to_numpy(v), rtol=1e-5, atol=1e-7)


def test_exploratory_candidates_stop_at_the_floor():
    from keras_losses.adaptive.trajectory import LIMITS

    loss = keras_losses.GeneralizedLoss(alpha_p=LIMITS[0], alpha_n=1.0, beta2=LIMITS[1])
    model = ExploratoryGLFModel(tiny_unet())
    assert model.bounds == LIMITS
    cand = keras.ops.convert_to_numpy(model._candidates(loss))
    assert cand[:, 0].min() == pytest.approx(LIMITS[0]) and cand[:, 2].max() == pytest.approx(
        LIMITS[1]
    )
    with pytest.raises(ValueError, match="bounds"):
        ExploratoryGLFModel(tiny_unet(), bounds=(0.0, 1.0))


def test_exact_search_equals_naive_27_copy_reference():
    x, y = blobs(8)
    runs = {}
    for rule in ("exp", "exp-naive"):
        loss = keras_losses.GeneralizedLoss()
        model, callbacks = prepare_adaptive_glf(
            tiny_unet(), loss, rule, keras.optimizers.Adam(1e-2)
        )
        history = model.fit(
            x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=callbacks
        )
        runs[rule] = (callbacks[0].rows, model.network.get_weights(), loss.coefficients, history)
    exact_rows, exact_w, exact_c, _ = runs["exp"]
    naive_rows, naive_w, naive_c, _ = runs["exp-naive"]
    steps, lr = 4, 1e-2
    assert len(exact_rows) == steps
    # the search must choose exactly the same action at every step, and a real one:
    # (1, 1, 1) unchanged after 4 steps would let a search that never moves pass
    assert [r["action"] for r in exact_rows] == [r["action"] for r in naive_rows]
    assert exact_c != pytest.approx({"alpha_p": 1.0, "alpha_n": 1.0, "beta2": 1.0})
    # Weights: the two paths sum the same float32 gradients in a different order, and oneDNN
    # picks the order per CPU. Adam normalises each update to about lr, so a gradient within
    # rounding of zero can move a weight by up to lr either way: one weight of 2,304 differed
    # by 1.06e-5 on another machine. Allow 0.1 % of the largest possible movement per step;
    # a wrong action or a wrong gradient moves weights by O(lr) = 1e-2.
    atol = steps * lr * 1e-3  # 4e-5
    for a, b in zip(exact_w, naive_w, strict=True):  # includes batch-norm moving statistics
        np.testing.assert_allclose(a, b, atol=atol, rtol=1e-4)
    assert exact_c == pytest.approx(naive_c, rel=1e-6)
    for a, b in zip(exact_rows, naive_rows, strict=True):
        assert a["score"] == pytest.approx(b["score"], rel=1e-4)


def test_candidate_scores_leave_state_alone_and_first_order_is_close():
    x, y = blobs(4)
    model, _ = prepare_adaptive_glf(
        tiny_unet(), keras_losses.GeneralizedLoss(), "exp", keras.optimizers.Adam(1e-3)
    )
    before = [w.copy() for w in model.get_weights()]
    exact, first = (np.array(s) for s in model.candidate_scores(x, y))
    assert exact.shape == first.shape == (len(ACTIONS),)
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # a small step: the linearisation is accurate to well under the spread of the scores
    np.testing.assert_allclose(first, exact, rtol=1e-3)


def test_exploratory_refuses_what_it_cannot_do_exactly():
    x, y = blobs(4)
    model, _ = prepare_adaptive_glf(
        tiny_unet(), keras_losses.GeneralizedLoss(), "exp", keras.optimizers.RMSprop()
    )
    with pytest.raises(ValueError, match="RMSprop"):
        model.train_on_batch(x, y)
    with pytest.raises(ValueError, match="per_image"):
        prepare_adaptive_glf(
            tiny_unet(), keras_losses.GeneralizedLoss(per_image=True), "exp", "adam"
        )[0].train_on_batch(x, y)
    with pytest.raises(ValueError, match="rule"):
        prepare_adaptive_glf(tiny_unet(), keras_losses.GeneralizedLoss(), "greedy", "adam")


def test_exploratory_model_saves_and_reloads(tmp_path):
    x, y = blobs(4)
    loss = keras_losses.GeneralizedLoss()
    model, callbacks = prepare_adaptive_glf(
        tiny_unet(), loss, "exp-first-order", "adam", run_dir=tmp_path
    )
    # four steps: the first two tie (Adam's first updates hardly depend on the coefficients)
    model.fit(x, y, batch_size=2, epochs=2, verbose=0, callbacks=callbacks)
    assert loss.coefficients != {"alpha_p": 1.0, "alpha_n": 1.0, "beta2": 1.0}
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(reloaded, ExploratoryGLFModel) and reloaded.mode == "first-order"
    assert reloaded.loss.coefficients == loss.coefficients
    np.testing.assert_allclose(
        reloaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )


# ---------------------------------------------------------------------------- ties
EPS32 = float(np.finfo(np.float32).eps)


# scores (lower is better) -> the action taken; KEEP_ACTION = 13 keeps all three coefficients
@pytest.mark.parametrize(
    "scores, tolerance, expected",
    [
        ([3.0, 2.0, 1.0, 4.0], 8.0, 2),  # a clear best
        ([1.0, 2.0, 1.0, 4.0], 8.0, KEEP_ACTION),  # exact tie of 0 and 2: never index 0
        ([1.0, 1.0 + 4 * EPS32, 3.0], 8.0, KEEP_ACTION),  # 4 eps apart: within 8 eps
        ([1.0 + 16 * EPS32, 1.0, 3.0], 8.0, 1),  # 16 eps apart: a decision
        ([1.0 + 4 * EPS32, 1.0, 3.0], 0.0, 1),  # tolerance 0: only exact ties
        ([2.0, 2.0], 0.0, KEEP_ACTION),
    ],
)
def test_tie_rule_by_hand(scores, tolerance, expected):
    scores = np.asarray(scores, np.float32)
    assert tie_choice(scores, tolerance) == expected
    action, best, ties, gap = choose_action(scores, tolerance)
    assert int(action) == expected
    assert float(best) == scores.min()
    assert (int(ties) > 1) == (expected == KEEP_ACTION)
    assert float(gap) == pytest.approx(np.sort(scores)[1] - scores.min(), abs=1e-12)


@pytest.mark.parametrize("rule", ["exp", "exp-naive", "exp-first-order"])
def test_a_step_whose_candidates_tie_exactly_keeps_the_coefficients(rule):
    # Learning rate 0: every candidate's weights are the current weights, so all 27 scores
    # are equal and the step has an exact 27-way tie. argmin by position would take
    # action 0, "x0.9 x0.9 x0.9".
    x, y = blobs(4)
    loss = keras_losses.GeneralizedLoss()
    model, callbacks = prepare_adaptive_glf(tiny_unet(), loss, rule, keras.optimizers.SGD(0.0))
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=callbacks)
    row = callbacks[0].rows[0]
    assert row["action"] == "x1 x1 x1"
    assert row["ties"] == len(ACTIONS) and row["score_gap"] == 0.0
    assert loss.coefficients == {"alpha_p": 1.0, "alpha_n": 1.0, "beta2": 1.0}


def dropout_unet(seed=1):
    keras.utils.set_random_seed(seed)
    return build_unet((32, 32, 1), depth=2, base_filters=4, dropout=0.5)


def test_scoring_is_deterministic_and_uses_the_steps_dropout_mask():
    x, y = blobs(4)
    model, _ = prepare_adaptive_glf(
        dropout_unet(), keras_losses.GeneralizedLoss(), "exp", keras.optimizers.Adam(1e-2)
    )
    model.train_on_batch(x, y)  # moments and a moved dropout seed
    first, _ = model.candidate_scores(x, y)
    again, _ = model.candidate_scores(x, y)
    # the same state scored twice: the same 27 scores (a different dropout mask at rate 0.5
    # moves a score by far more than this)
    np.testing.assert_allclose(np.asarray(first), np.asarray(again), rtol=1e-6)
    # the train step scores the candidates with its own forward pass: its chosen score is the
    # one candidate_scores gives on the same state
    logs = model.train_on_batch(x, y, return_dict=True)
    index = int(logs["glf_action_index"])
    assert float(logs["glf_score"]) == pytest.approx(float(np.asarray(first)[index]), rel=1e-5)
    assert index == tie_choice(np.asarray(first), model.tie_tolerance)


def test_tie_tolerance_is_checked_and_saved():
    with pytest.raises(ValueError, match="tie_tolerance"):
        ExploratoryGLFModel(tiny_unet(), tie_tolerance=-1)
    model = ExploratoryGLFModel(tiny_unet(), tie_tolerance=2.0)
    assert ExploratoryGLFModel.from_config(model.get_config()).tie_tolerance == 2.0
