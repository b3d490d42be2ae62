"""The hybrid exploratory search: first-order ranking, the top k candidates scored exactly."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_losses
from keras_losses.adaptive import ACTIONS, KEEP_ACTION, ExploratoryGLFModel, prepare_adaptive_glf
from keras_losses.adaptive.exploratory import lowest_k
from tests.keras_losses.conftest import needs_search_backend
from tests.keras_losses.test_adaptive import blobs, tiny_unet

# the search's own tests: TensorFlow and JAX (another backend is refused, see conftest)
pytestmark = needs_search_backend


# (exact scores, first-order scores, k) -> the hybrid's action; 4 candidates for readability
@pytest.mark.parametrize(
    "exact, first, k, expected",
    [
        ([4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0], 1, 0),  # only the first-order best
        ([4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0], 2, 1),  # best exact of {0, 1}
        ([4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0], 4, 3),  # all: the exact argmin
        ([1.0, 1.0, 0.5, 0.5], [2.0, 2.0, 1.0, 1.0], 2, KEEP_ACTION),  # a tie keeps all three
        ([1.0, 1.0, 0.5, 0.5], [2.0, 2.0, 1.0, 1.5], 1, 2),  # one scored: no tie possible
        ([1.0, 0.5, 0.5, 3.0], [3.0, 2.0, 2.0, 1.0], 3, KEEP_ACTION),  # 1 and 2 tie
        ([1.0, 0.5, 0.6, 3.0], [3.0, 2.0, 2.0, 1.0], 3, 1),
        # 1 and 2 tie at the k-th (2nd) place of the ranking: the lower index, 1, is scored
        ([9.0, 5.0, 1.0, 7.0], [3.0, 2.0, 2.0, 1.0], 2, 1),
        ([9.0, 5.0, 1.0, 7.0], [3.0, 2.0, 2.0, 1.0], 3, 2),  # both scored
    ],
)
def test_hybrid_choice_by_hand(exact, first, k, expected):
    assert ExploratoryGLFModel.hybrid_choice(exact, first, k) == expected


@pytest.mark.parametrize(
    "scores, k",
    [
        ([3.0, 2.0, 2.0, 1.0], 2),  # a tie at the k-th place
        ([2.0, 2.0, 2.0, 2.0], 3),  # all tied
        ([0.5, 1.0, 0.5, 1.0, 0.5], 4),  # ties inside and at the k-th place
        (np.float32(np.random.default_rng(0).integers(0, 4, 27)), 5),  # 27 candidates, 4 values
    ],
)
def test_the_in_step_ranking_breaks_ties_toward_the_lower_index(scores, k):
    """The ranking the compiled train step uses, on this backend, against a stable sort."""
    got = keras.ops.convert_to_numpy(lowest_k(np.asarray(scores, "float32"), k))
    expected = np.argsort(np.asarray(scores, "float32"), kind="stable")[:k]
    np.testing.assert_array_equal(got, expected)


def test_hybrid_takes_the_exact_action_among_the_first_order_top_k():
    x, y = blobs(8)
    loss = keras_losses.GeneralizedLoss()
    model, _ = prepare_adaptive_glf(
        tiny_unet(), loss, "exp-hybrid", keras.optimizers.Adam(1e-2), rule_options={"top_k": 2}
    )
    assert model.mode == "hybrid" and model.top_k == 2
    chosen = []
    for step in range(4):
        xb, yb = x[4 * (step % 2) : 4 * (step % 2) + 4], y[4 * (step % 2) : 4 * (step % 2) + 4]
        exact, first = (np.asarray(s) for s in model.candidate_scores(xb, yb))
        logs = model.train_on_batch(xb, yb, return_dict=True)
        index = int(logs["glf_action_index"])
        assert index == ExploratoryGLFModel.hybrid_choice(exact, first, 2)
        top = np.argsort(first, kind="stable")[:2]
        assert float(logs["glf_score"]) == pytest.approx(exact[top].min(), rel=1e-4)
        chosen.append(index)
    assert any(i != 13 for i in chosen)  # it moved the coefficients


def test_hybrid_with_all_27_is_the_exact_search():
    x, y = blobs(8)
    rows = {}
    for rule, options in (("exp", None), ("exp-hybrid", {"top_k": len(ACTIONS)})):
        loss = keras_losses.GeneralizedLoss()
        model, callbacks = prepare_adaptive_glf(
            tiny_unet(), loss, rule, keras.optimizers.Adam(1e-2), rule_options=options
        )
        model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0, callbacks=callbacks)
        rows[rule] = [r["action"] for r in callbacks[0].rows]
    assert rows["exp"] == rows["exp-hybrid"]


def test_top_k_is_checked_and_saved():
    with pytest.raises(ValueError, match="top_k"):
        ExploratoryGLFModel(tiny_unet(), mode="hybrid", top_k=0)
    with pytest.raises(ValueError, match="top_k"):
        ExploratoryGLFModel(tiny_unet(), mode="hybrid", top_k=28)
    model = ExploratoryGLFModel(tiny_unet(), mode="hybrid", top_k=4)
    again = ExploratoryGLFModel.from_config(model.get_config())
    assert (again.mode, again.top_k) == ("hybrid", 4)
