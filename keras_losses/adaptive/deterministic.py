"""The deterministic adaptive-GLF rule (Seo et al. 2021, Sec. II-B, Fig. 2b) as a Keras callback."""

from __future__ import annotations

import bisect
import math

import keras
import numpy as np

from keras_losses._base import register
from keras_losses.adaptive.trajectory import COEFFICIENTS, GLFTrajectoryRecorder, glf_statistics

# Fig. 2b: five bands of a ratio, symmetric in log scale. The paper prints one threshold
# (alpha_P x0.5 when <TP/FP> < 1/15); the others complete the symmetric pattern.
DEFAULT_THRESHOLDS = (1 / 15, 1 / 5, 5.0, 15.0)
# Fig. 2b: the five actions x0.5, x0.75, x1, x1.25, x1.5, from the lowest band up.
# alpha_P rises with <TP/FP> (few FPs -> weigh them more), alpha_N with <TP/FN>.
DEFAULT_ALPHA_FACTORS = (0.5, 0.75, 1.0, 1.25, 1.5)
# beta^2 weighs recall: increase it when P_ap << R_an, decrease it when P_ap >> R_an.
DEFAULT_BETA2_FACTORS = (1.5, 1.25, 1.0, 0.75, 0.5)
# Sec. II-B: alpha_P and alpha_N "are not updated when <FP> > 5 and <FN> > 1".
DEFAULT_GUARD_FP = 5.0
DEFAULT_GUARD_FN = 1.0
GUARD_MODES = ("below", "above", "off")


def band_index(ratio: float, thresholds) -> int:
    """Band 0..len(thresholds) of ``ratio``; a ratio equal to a threshold stays in the band
    nearer 1 (so ratio and 1/ratio fall in mirrored bands with the default thresholds)."""
    if ratio <= 1.0:
        return bisect.bisect_right(thresholds, ratio)
    return bisect.bisect_left(thresholds, ratio)


def _tuple(name, values, n, positive=True):
    try:
        values = tuple(float(v) for v in values)
    except TypeError:
        raise ValueError(
            f"`{name}` must be a sequence of {n} numbers; received {values!r}"
        ) from None
    if len(values) != n or (positive and any(not math.isfinite(v) or v <= 0 for v in values)):
        raise ValueError(f"`{name}` must be {n} positive numbers; received {values}")
    return values


@register
class DeterministicGLFCallback(GLFTrajectoryRecorder):
    """Adapt the GLF coefficients after every train batch by the deterministic rule.

    After each optimization step the callback reads the soft counts the loss pooled over the
    batch just trained (``loss.counts``, ``loss.num_images``), computes the three driving
    statistics and multiplies each coefficient by the factor of the band its statistic falls in:

    Formula (Seo et al. 2021, Fig. 2b), with default thresholds t = (1/15, 1/5, 5, 15):
        r_P = <TP/FP>       -> alpha_P *= (0.5, 0.75, 1, 1.25, 1.5)[band(r_P)]
        r_N = <TP/FN>       -> alpha_N *= (0.5, 0.75, 1, 1.25, 1.5)[band(r_N)]
        r_B = P_ap / R_an   -> beta^2  *= (1.5, 1.25, 1, 0.75, 0.5)[band(r_B)]
        band(r) = 0 if r < 1/15, 1 if r < 1/5, 2 if 1/5 <= r <= 5, 3 if r <= 15, else 4

    ``<TP/FP>`` is the ratio of the batch means, i.e. of the pooled sums (see
    :func:`~keras_losses.adaptive.trajectory.glf_statistics`); ``P_ap``/``R_an`` use the
    coefficients the step trained with. The new values are assigned to the loss's variables and
    used by the very next step.

    Divergence guard: the paper says alpha_P and alpha_N "are not updated when <FP> > 5 and
    <FN> > 1, respectively" (<FP>, <FN> per-image batch means). But divergence comes from
    TINY FP or FN counts: the ratios <TP/FP>, <TP/FN> then explode and the coefficient is
    multiplied by 1.5 at every step without end. The default ``guard_mode="below"`` therefore
    freezes alpha_P while <FP> < ``guard_fp`` and alpha_N while <FN> < ``guard_fn``;
    ``"above"`` is the literal reading of the text, ``"off"`` disables the guard. Optional
    ``bounds`` clip each coefficient as well.

    Distribution: under ``tf.distribute`` the loss's ``counts`` and ``num_images`` variables
    aggregate by SUM, so after a step they hold the counts of the global batch (the sum over
    replicas of each replica's pooled counts). The callback runs once, in the cross-replica
    context, and assigns mirrored coefficient variables: every replica trains the next step
    with identical coefficients. Build the loss inside ``strategy.scope()`` (as the model), or
    its variables are not mirrored and the counts are those of one replica only.

    ``steps_per_execution > 1`` is refused: batch callbacks would fire only every N steps.

    Args:
        loss: the :class:`~keras_losses.GeneralizedLoss` compiled into the model (``per_image``
            may be either; the rule uses the batch-pooled counts in both cases).
        thresholds: four increasing band edges. Default (1/15, 1/5, 5, 15) (Fig. 2b).
        alpha_p_factors, alpha_n_factors: five factors from lowest to highest band.
            Default (0.5, 0.75, 1, 1.25, 1.5) (Fig. 2b).
        beta2_factors: five factors of beta^2 by band of P_ap/R_an. Default
            (1.5, 1.25, 1, 0.75, 0.5) (Fig. 2b read with the issue's direction).
        guard_fp, guard_fn: per-image count thresholds of the guard. Default 5 and 1 (Sec. II-B).
        guard_mode: "below" (default), "above" (the text's literal direction) or "off".
        bounds: ``{"alpha_p": [lo, hi], ...}`` clipping bounds (None entries: unbounded).
            Default None (no bounds; not in the paper).
        eps: smoothing of the ratios. Default 1e-6.
        csv_path, tensorboard_dir, state_path: see
            :class:`~keras_losses.adaptive.trajectory.GLFTrajectoryRecorder`.

    Reference:
        S. Seo, M. Bassenne, L. Xing, IEEE TMI 40(2), 2021, Sec. II-B and Fig. 2b.

    Example:
        >>> loss = keras_losses.GeneralizedLoss()
        >>> model.compile(optimizer="adam", loss=loss)
        >>> model.fit(ds, callbacks=[DeterministicGLFCallback(loss, csv_path="glf.csv")])
    """

    def __init__(
        self,
        loss,
        thresholds=DEFAULT_THRESHOLDS,
        alpha_p_factors=DEFAULT_ALPHA_FACTORS,
        alpha_n_factors=DEFAULT_ALPHA_FACTORS,
        beta2_factors=DEFAULT_BETA2_FACTORS,
        guard_fp: float = DEFAULT_GUARD_FP,
        guard_fn: float = DEFAULT_GUARD_FN,
        guard_mode: str = "below",
        bounds: dict | None = None,
        eps: float = 1e-6,
        csv_path=None,
        tensorboard_dir=None,
        state_path=None,
    ):
        if isinstance(loss, dict):  # from_config
            loss = keras.saving.deserialize_keras_object(loss)
        super().__init__(
            loss, csv_path=csv_path, tensorboard_dir=tensorboard_dir, state_path=state_path
        )
        self.thresholds = _tuple("thresholds", thresholds, 4)
        if list(self.thresholds) != sorted(self.thresholds) or len(set(self.thresholds)) != 4:
            raise ValueError(
                f"`thresholds` must be strictly increasing; received {self.thresholds}"
            )
        self.alpha_p_factors = _tuple("alpha_p_factors", alpha_p_factors, 5)
        self.alpha_n_factors = _tuple("alpha_n_factors", alpha_n_factors, 5)
        self.beta2_factors = _tuple("beta2_factors", beta2_factors, 5)
        self.guard_fp = float(guard_fp)
        self.guard_fn = float(guard_fn)
        if guard_mode not in GUARD_MODES:
            raise ValueError(f"`guard_mode` must be one of {GUARD_MODES}; received {guard_mode!r}")
        self.guard_mode = guard_mode
        self.bounds = _check_bounds(bounds)
        self.eps = float(eps)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        spe = getattr(self.model, "steps_per_execution", 1)
        spe = int(keras.ops.convert_to_numpy(spe)) if spe is not None else 1
        if spe > 1:
            raise ValueError(
                f"DeterministicGLFCallback updates the GLF after every step, but the model was "
                f"compiled with steps_per_execution={spe} (batch callbacks fire every {spe} "
                "steps); compile with steps_per_execution=1"
            )

    def _guarded(self, mean_count: float, threshold: float) -> bool:
        if self.guard_mode == "below":
            return mean_count < threshold
        if self.guard_mode == "above":
            return mean_count > threshold
        return False

    def next_coefficients(self, tp, fp, fn, images, coefficients):
        """The rule itself: ``(new coefficients, statistics, action text)`` from pooled counts."""
        stats = glf_statistics(
            tp, fp, fn, coefficients["alpha_p"], coefficients["alpha_n"], self.eps
        )
        images = max(float(images), 1.0)
        factors = {
            "alpha_p": self.alpha_p_factors[band_index(stats["tp_fp"], self.thresholds)],
            "alpha_n": self.alpha_n_factors[band_index(stats["tp_fn"], self.thresholds)],
            "beta2": self.beta2_factors[band_index(stats["p_r_ratio"], self.thresholds)],
        }
        if self._guarded(fp / images, self.guard_fp):
            factors["alpha_p"] = 1.0
        if self._guarded(fn / images, self.guard_fn):
            factors["alpha_n"] = 1.0
        new = {}
        for c in COEFFICIENTS:
            value = float(np.float32(coefficients[c] * factors[c]))
            lo, hi = self.bounds.get(c, (None, None))
            if lo is not None:
                value = max(value, lo)
            if hi is not None:
                value = min(value, hi)
            new[c] = float(np.float32(value))  # what the float32 variable will hold
        action = " ".join(f"x{factors[c]:g}" for c in COEFFICIENTS)
        return new, stats, action

    def on_train_batch_end(self, batch, logs=None):
        tp, fp, fn = (float(v) for v in keras.ops.convert_to_numpy(self.loss.counts))
        images = float(keras.ops.convert_to_numpy(self.loss.num_images))
        used = self._coefficients
        new, stats, action = self.next_coefficients(tp, fp, fn, images, used)
        if new != used:
            self.loss.set_coefficients(**new)
            self._coefficients = new
        row = {
            "batch": batch + 1,
            **used,
            **{f"next_{c}": new[c] for c in COEFFICIENTS},
            "action": action,
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "images": images,
            **stats,
            "score": "",
        }
        self.record(row, logs)

    def get_config(self):
        return {
            "loss": keras.saving.serialize_keras_object(self.loss),
            "thresholds": list(self.thresholds),
            "alpha_p_factors": list(self.alpha_p_factors),
            "alpha_n_factors": list(self.alpha_n_factors),
            "beta2_factors": list(self.beta2_factors),
            "guard_fp": self.guard_fp,
            "guard_fn": self.guard_fn,
            "guard_mode": self.guard_mode,
            "bounds": {k: list(v) for k, v in self.bounds.items()} or None,
            "eps": self.eps,
            "csv_path": self.csv_path,
            "tensorboard_dir": self.tensorboard_dir,
            "state_path": self.state_path,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _check_bounds(bounds) -> dict:
    if bounds is None:
        return {}
    if not isinstance(bounds, dict) or not set(bounds) <= set(COEFFICIENTS):
        raise ValueError(
            f"`bounds` must be a dict with keys among {COEFFICIENTS} and [lo, hi] values; received {bounds!r}"
        )
    out = {}
    for key, pair in bounds.items():
        lo, hi = pair
        lo = None if lo is None else float(lo)
        hi = None if hi is None else float(hi)
        if (lo is not None and lo <= 0) or (hi is not None and lo is not None and hi < lo):
            raise ValueError(f"`bounds[{key!r}]` must be 0 < lo <= hi; received {pair!r}")
        out[key] = (lo, hi)
    return out
