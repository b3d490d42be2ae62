"""The deterministic adaptive-GLF rule (Seo et al. 2021, Sec. II-B, Fig. 2b) as a Keras callback."""

from __future__ import annotations

import bisect
import math

import keras
import numpy as np

from keras_losses._base import register
from keras_losses.adaptive.compiled import check_compiled
from keras_losses.adaptive.trajectory import (
    COEFFICIENTS,
    LIMITS,
    GLFTrajectoryRecorder,
    bound_state,
    glf_statistics,
)
from keras_losses.generalized import RATIO_EPS, image_ratios

# Fig. 2b: five bands of a ratio, symmetric in log scale. The paper prints one threshold
# (alpha_P x0.5 when <TP/FP> < 1/15); the others complete the symmetric pattern.
DEFAULT_THRESHOLDS = (1 / 15, 1 / 5, 5.0, 15.0)
# Fig. 2b: the five actions x0.5, x0.75, x1, x1.25, x1.5, from the lowest band up.
# alpha_P rises with <TP/FP> (few FPs -> weigh them more), alpha_N with <TP/FN>.
DEFAULT_ALPHA_FACTORS = (0.5, 0.75, 1.0, 1.25, 1.5)
# beta^2 weighs recall: increase it when P_ap << R_an, decrease it when P_ap >> R_an.
DEFAULT_BETA2_FACTORS = (1.5, 1.25, 1.0, 0.75, 0.5)
# Fig. 2 caption: "In order to avoid the unbounded divergence of the parameters, the
# parameters alpha_P and alpha_N are not updated when <FP> > 5 and <FN> > 1, respectively,
# where the symbols <.> denote batch-averaged values." Pixel counts per image, set for the
# paper's 512x512 slices (Sec. II-C: "All input images are 512x512").
DEFAULT_GUARD_FP = 5.0
DEFAULT_GUARD_FN = 1.0
PAPER_IMAGE_PIXELS = 512 * 512
# "literal": the caption as written (freeze while <FP> > 5 / <FN> > 1), the default.
# "reversed": freeze while <FP> < 5 / <FN> < 1 (the opposite of the caption, NOT the paper's).
# "off": no guard (NOT the paper's).
GUARD_MODES = ("literal", "reversed", "off")
# Alternative names, accepted when a saved config that uses them is reloaded.
GUARD_ALIASES = {"above": "literal", "below": "reversed"}
# How <TP/FP>, <TP/FN>, P_ap/R_an are formed from a batch: "per-image" = batch mean of the
# per-image ratios (the caption's "<.> denote batch-averaged values" read literally, the
# default); "pooled" = ratio of the batch sums (= ratio of the batch means).
STATISTIC_FORMS = ("per-image", "pooled")
# Counts the statistics use: "soft" (sums of probabilities, as in the loss) or "hard" (the
# output thresholded at 0.5, Sec. II-C). The paper does not say.
COUNT_KINDS = ("soft", "hard")
# The statistic banded for beta^2. Sec. II-B: "The relative weight (beta^2 P_ap/R_an)
# therefore justifies increasing beta^2 when P_ap << R_an and decreasing it when
# P_ap >> R_an"; Fig. 6f plots the "ratio of weighted recall and weighted precision".
# "p_r" bands P_ap/R_an; "beta2_p_r" bands beta^2 P_ap/R_an (the relative weight itself).
BETA2_STATISTICS = ("p_r", "beta2_p_r")
# Guard thresholds as given (pixels per image) or scaled by image area / 512^2.
GUARD_SCALES = ("none", "area")


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


def rule_statistics(
    tp,
    fp,
    fn,
    alpha_p: float,
    alpha_n: float,
    beta2: float,
    statistic: str = "per-image",
    beta2_statistic: str = "p_r",
    eps: float = RATIO_EPS,
) -> dict[str, float]:
    """The three statistics the deterministic rule bands, from per-image counts.

    Formula (n images, per-image counts TP_i, FP_i, FN_i):
        per-image:  r_P = mean_i (TP_i + eps) / (FP_i + eps)     r_N likewise with FN_i
                    r_B = mean_i (TP_i + alpha_n FN_i + eps) / (TP_i + alpha_p FP_i + eps)
        pooled:     the same ratios of the sums over the batch
        beta2_statistic "beta2_p_r": r_B *= beta2
    (The guard's <FP>, <FN> are sum FP_i / n and sum FN_i / n in both forms.)

    Args:
        tp, fp, fn: per-image counts, 1-D arrays of equal length (the batch).
        alpha_p, alpha_n, beta2: the coefficients the step trained with.
        statistic: "per-image" (default) or "pooled". beta2_statistic: "p_r" or "beta2_p_r".
        eps: smoothing of the ratios. Default RATIO_EPS (1e-6), as in the loss.
    """
    tp, fp, fn = (np.asarray(v, np.float64).reshape(-1) for v in (tp, fp, fn))
    if not len(tp) == len(fp) == len(fn) or len(tp) == 0:
        raise ValueError(
            f"rule_statistics: tp, fp, fn must be per-image counts of one non-empty batch; "
            f"received lengths {len(tp)}, {len(fp)}, {len(fn)}"
        )
    _choice("statistic", statistic, STATISTIC_FORMS)
    _choice("beta2_statistic", beta2_statistic, BETA2_STATISTICS)
    if statistic == "pooled":
        tp, fp, fn = tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True)
    ratios = [float(np.mean(r)) for r in image_ratios(tp, fp, fn, alpha_p, alpha_n, eps)]
    r_b = ratios[2] * (beta2 if beta2_statistic == "beta2_p_r" else 1.0)
    return {"rule_p": ratios[0], "rule_n": ratios[1], "rule_b": r_b}


def _choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}; received {value!r}")
    return value


@register
class DeterministicGLFCallback(GLFTrajectoryRecorder):
    """Adapt the GLF coefficients after every train batch by the deterministic rule.

    After each optimization step the callback reads what the loss's state recorded about the
    batch just trained (``loss.state.counts``, ``hard_counts``, ``ratio_sums``, ``num_images``,
    ``num_pixels``; see :class:`~keras_losses.generalized.GLFState`), forms the three driving
    statistics and multiplies each coefficient by the factor of the band its statistic falls
    in. The model must be compiled with the loss (alone or as a term) and with ``loss.state``
    among its metrics, which records the batch and carries the coefficients through the
    compiled step on every backend; ``on_train_begin`` checks both and refuses otherwise.

    Formula (Seo et al. 2021, Fig. 2b), with default thresholds t = (1/15, 1/5, 5, 15):
        r_P = <TP/FP>                   -> alpha_P *= (0.5, 0.75, 1, 1.25, 1.5)[band(r_P)]
        r_N = <TP/FN>                   -> alpha_N *= (0.5, 0.75, 1, 1.25, 1.5)[band(r_N)]
        r_B = <P_ap/R_an> (x beta^2)    -> beta^2  *= (1.5, 1.25, 1, 0.75, 0.5)[band(r_B)]
        band(r) = 0 if r < 1/15, 1 if r < 1/5, 2 if 1/5 <= r <= 5, 3 if r <= 15, else 4
        (the text gives the edge 1/15 only; 1/5, 5 and 15 are ours, the symmetric pattern)
        guard "literal": alpha_P unchanged while <FP> > 5, alpha_N unchanged while <FN> > 1
        every coefficient then clipped to ``bounds`` (if given) and to LIMITS = [1e-6, 1e6]

    The paper's words for each choice, and which are ours:

    - Guard. Fig. 2 caption: "In order to avoid the unbounded divergence of the parameters,
      the parameters alpha_P and alpha_N are not updated when <FP> > 5 and <FN> > 1,
      respectively, where the symbols <.> denote batch-averaged values." ``guard_mode=
      "literal"`` (default) does exactly that. Early in training FP >> TP, so the literal guard
      holds alpha_P at its start value through the phase where <TP/FP> < 1/15 would halve it
      at every step. ``"reversed"`` (freeze while <FP> < 5 / <FN> < 1) and ``"off"`` are NOT
      the paper's; they are kept for comparison (docs/lung.md, ablation). ``"above"`` and
      ``"below"`` are accepted as other names of "literal" and "reversed".
    - Statistic form. "<.> denote batch-averaged values": ``statistic="per-image"`` (default)
      averages the per-image ratios over the batch; ``"pooled"`` takes the ratio of the batch
      sums (another reading). <FP>, <FN> of the guard are per-image batch means either way.
    - Counts. The paper does not say whether the statistics use the continuous output or the
      output thresholded at 0.5 ("The performance metrics are calculated by thresholding the
      continuous output layer values with a threshold 0.5"): ``counts="soft"`` (default) or
      ``"hard"``. Measured (ablation): with hard counts an untrained network that marks every
      pixel has hard FN = 0, <FN> < 1 releases the guard and <TP/FN> is huge, so alpha_N
      grew x1.5 per step to the ceiling (97 % of the 1,000 steps on the patches).
    - beta^2 statistic. Sec. II-B: "The relative weight (beta^2 P_ap/R_an) therefore justifies
      increasing beta^2 when P_ap << R_an and decreasing it when P_ap >> R_an." Fig. 2b is
      not legible in our copy; Fig. 6f plots the "ratio of weighted recall and weighted
      precision". ``beta2_statistic="beta2_p_r"`` (default) bands the relative weight
      beta^2 P_ap/R_an, which stops growing once beta^2 has made up for a small P_ap/R_an;
      ``"p_r"`` bands P_ap/R_an alone (another reading). Measured (docs/lung.md,
      ablation): with "p_r" beta^2 sat at the ceiling 1e6 in 95 % of the 1,000 steps on the lung
      patches; with "beta2_p_r" it stayed between 1 and 12.
    - Guard scale. The thresholds 5 and 1 px were set for 512x512 slices: ``guard_scale=
      "none"`` (default) uses them as given at any size; ``"area"`` multiplies them by
      (pixels per image) / 512^2 (ours).
    - Limits. The paper has no bounds. The coefficients are kept in LIMITS = [1e-6, 1e6] so that
      a long run cannot underflow to 0 in float32 and crash; ``bounds`` adds a narrower clip
      (ours, default none). The trajectory's ``*_bound`` columns record every step at either.

    Defaults where the text is silent (counts, beta^2 statistic, guard scale) are chosen by the
    ablation in docs/lung.md.

    Distribution: under ``tf.distribute`` the loss's recording variables aggregate by SUM, so
    after a step they hold the global batch. The callback runs once, in the cross-replica
    context, and assigns mirrored coefficient variables: every replica trains the next step
    with identical coefficients. Build the loss inside ``strategy.scope()`` (as the model), or
    its variables are not mirrored and the counts are those of one replica only.

    ``steps_per_execution > 1`` is refused: batch callbacks would fire only every N steps.

    Args:
        loss: the :class:`~keras_losses.GeneralizedLoss` compiled into the model (``per_image``
            may be either; the rule reads the loss's recorded batch statistics).
        thresholds: four increasing band edges. Default (1/15, 1/5, 5, 15) (Fig. 2b).
        alpha_p_factors, alpha_n_factors: five factors from lowest to highest band.
            Default (0.5, 0.75, 1, 1.25, 1.5) (Fig. 2b).
        beta2_factors: five factors of beta^2 by band of its statistic. Default
            (1.5, 1.25, 1, 0.75, 0.5): increase when P_ap << R_an (Sec. II-B).
        guard_fp, guard_fn: per-image count thresholds of the guard. Default 5 and 1 (Fig. 2).
        guard_mode: "literal" (default, the paper), "reversed" or "off" (not the paper's).
        statistic: "per-image" (default) or "pooled".
        counts: "soft" (default) or "hard" (thresholded at 0.5).
        beta2_statistic: "beta2_p_r" (default) or "p_r".
        guard_scale: "none" (default) or "area".
        bounds: ``{"alpha_p": [lo, hi], ...}`` clip bounds (None entries: unbounded). Default
            None (no clip; not in the paper). LIMITS apply in any case.
        eps: smoothing of the ratios. Default 1e-6 (the loss records per-image ratios with
            the same RATIO_EPS; another eps applies to the pooled form only).
        csv_path, tensorboard_dir, state_path: see
            :class:`~keras_losses.adaptive.trajectory.GLFTrajectoryRecorder`.

    Reference:
        S. Seo, M. Bassenne, L. Xing, IEEE TMI 40(2), 2021, Sec. II-B and Fig. 2b.

    Example:
        >>> import keras, numpy as np, keras_losses
        >>> x = np.random.default_rng(0).random((8, 16, 16, 1)).astype("float32")
        >>> y = (x > 0.7).astype("float32")  # shape: (8, 16, 16, 1)
        >>> model = keras.Sequential(
        ...     [keras.Input((16, 16, 1)), keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")]
        ... )
        >>> loss = keras_losses.GeneralizedLoss()  # starts at the Dice values (1, 1, 1)
        >>> model.compile(optimizer="adam", loss=loss, metrics=[loss.state])  # state: see GLFState
        >>> callback = DeterministicGLFCallback(loss, csv_path="glf.csv")
        >>> _ = model.fit(x, y, batch_size=4, epochs=1, callbacks=[callback], verbose=0)
        >>> sorted(loss.coefficients)  # assigned after each of the 2 batches
        ['alpha_n', 'alpha_p', 'beta2']
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
        guard_mode: str = "literal",
        statistic: str = "per-image",
        counts: str = "soft",
        beta2_statistic: str = "beta2_p_r",
        guard_scale: str = "none",
        bounds: dict | None = None,
        eps: float = RATIO_EPS,
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
        guard_mode = GUARD_ALIASES.get(guard_mode, guard_mode)
        self.guard_mode = _choice("guard_mode", guard_mode, GUARD_MODES)
        self.statistic = _choice("statistic", statistic, STATISTIC_FORMS)
        self.counts = _choice("counts", counts, COUNT_KINDS)
        self.beta2_statistic = _choice("beta2_statistic", beta2_statistic, BETA2_STATISTICS)
        self.guard_scale = _choice("guard_scale", guard_scale, GUARD_SCALES)
        self.bounds = _check_bounds(bounds)
        self.eps = float(eps)
        if not self.eps > 0:
            raise ValueError(f"`eps` must be > 0; received {eps}")

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        check_compiled(self.model, self.loss, type(self).__name__)
        spe = getattr(self.model, "steps_per_execution", 1)
        spe = int(keras.ops.convert_to_numpy(spe)) if spe is not None else 1
        if spe > 1:
            raise ValueError(
                f"DeterministicGLFCallback updates the GLF after every step, but the model was "
                f"compiled with steps_per_execution={spe} (batch callbacks fire every {spe} "
                "steps); compile with steps_per_execution=1"
            )

    def guarded(self, mean_count: float, threshold: float) -> bool:
        """Whether the guard freezes a coefficient whose per-image mean count is ``mean_count``."""
        if self.guard_mode == "literal":
            return mean_count > threshold
        if self.guard_mode == "reversed":
            return mean_count < threshold
        return False

    def guard_thresholds(self, pixels_per_image: float | None = None) -> tuple[float, float]:
        """(guard_fp, guard_fn), scaled by ``pixels_per_image`` / 512^2 for guard_scale="area"."""
        if self.guard_scale == "none":
            return self.guard_fp, self.guard_fn
        if pixels_per_image is None or not pixels_per_image > 0:
            raise ValueError(
                "guard_scale='area' needs the pixels per image of the batch; received "
                f"{pixels_per_image!r}"
            )
        scale = float(pixels_per_image) / PAPER_IMAGE_PIXELS
        return self.guard_fp * scale, self.guard_fn * scale

    def next_coefficients(
        self, tp, fp, fn, images, coefficients, *, ratio_means=None, pixels_per_image=None
    ):
        """The rule itself: ``(new coefficients, statistics, action text)``.

        Args:
            tp, fp, fn: either per-image counts (1-D arrays, one entry per image of the batch)
                or the sums over the batch (scalars) of the kind the rule uses (``counts``).
            images: number of images in the batch.
            coefficients: ``{"alpha_p", "alpha_n", "beta2"}`` the step trained with.
            ratio_means: with scalar sums and ``statistic="per-image"``: the batch means
                (<TP/FP>, <TP/FN>, <P_ap/R_an>) of the per-image ratios (what the loss records).
            pixels_per_image: for ``guard_scale="area"``.

        Returns ``stats`` with the logged statistics (pooled, as in every trajectory),
        ``rule_p``, ``rule_n``, ``rule_b`` (what was banded) and ``guard`` (frozen names).
        """
        a_p, a_n, b2 = (coefficients[c] for c in COEFFICIENTS)
        images = max(float(images), 1.0)
        per_image_counts = np.ndim(tp) > 0
        if per_image_counts:
            rule = rule_statistics(
                tp, fp, fn, a_p, a_n, b2, self.statistic, self.beta2_statistic, self.eps
            )
            tp, fp, fn = (float(np.sum(v)) for v in (tp, fp, fn))
        elif self.statistic == "pooled":
            rule = rule_statistics(
                [tp], [fp], [fn], a_p, a_n, b2, "pooled", self.beta2_statistic, self.eps
            )
        else:
            if ratio_means is None:
                raise ValueError(
                    "DeterministicGLFCallback(statistic='per-image') needs per-image counts or "
                    "`ratio_means` (batch means of the per-image ratios); received batch sums only"
                )
            r_p, r_n, r_b = (float(v) for v in ratio_means)
            if self.beta2_statistic == "beta2_p_r":
                r_b *= b2
            rule = {"rule_p": r_p, "rule_n": r_n, "rule_b": r_b}
        stats = {**glf_statistics(tp, fp, fn, a_p, a_n, self.eps), **rule}
        factors = {
            "alpha_p": self.alpha_p_factors[band_index(rule["rule_p"], self.thresholds)],
            "alpha_n": self.alpha_n_factors[band_index(rule["rule_n"], self.thresholds)],
            "beta2": self.beta2_factors[band_index(rule["rule_b"], self.thresholds)],
        }
        guard_fp, guard_fn = self.guard_thresholds(pixels_per_image)
        frozen = []
        if self.guarded(fp / images, guard_fp):
            factors["alpha_p"] = 1.0
            frozen.append("alpha_p")
        if self.guarded(fn / images, guard_fn):
            factors["alpha_n"] = 1.0
            frozen.append("alpha_n")
        new, where = {}, {}
        for c in COEFFICIENTS:
            value = float(np.float32(coefficients[c] * factors[c]))
            lo, hi = self.bounds.get(c, (None, None))
            lo = LIMITS[0] if lo is None else max(lo, LIMITS[0])
            hi = LIMITS[1] if hi is None else min(hi, LIMITS[1])
            value = min(max(value, lo), hi)
            new[c] = float(np.float32(value))  # what the float32 variable will hold
            where[f"{c}_bound"] = bound_state(new[c], lo, hi)
        stats = {**stats, "guard": " ".join(frozen), **where}
        action = " ".join(f"x{factors[c]:g}" for c in COEFFICIENTS)
        return new, stats, action

    def _read_batch(self):
        """Sums and per-image ratio means of the batch just trained, of the kind in use."""
        state = self.loss.state
        images = float(keras.ops.convert_to_numpy(state.num_images))
        variable = state.counts if self.counts == "soft" else state.hard_counts
        tp, fp, fn = (float(v) for v in keras.ops.convert_to_numpy(variable))
        ratio_means = None
        if self.statistic == "per-image":
            sums = keras.ops.convert_to_numpy(state.ratio_sums)[0 if self.counts == "soft" else 1]
            ratio_means = [float(v) / max(images, 1.0) for v in sums]
        pixels = None
        if self.guard_scale == "area":
            pixels = float(keras.ops.convert_to_numpy(state.num_pixels)) / max(images, 1.0)
        return tp, fp, fn, images, ratio_means, pixels

    def on_train_batch_end(self, batch, logs=None):
        # Under JAX the train step's state lives outside the variables during an epoch; reading
        # `self.model` writes it back (the recorded batch included), and the coefficients
        # assigned below are what the next step reads.
        self.model  # noqa: B018
        if logs is not None:
            logs.pop(self.loss.state.name, None)  # images per batch: the trajectory has them
        tp, fp, fn, images, ratio_means, pixels = self._read_batch()
        used = self._coefficients
        new, stats, action = self.next_coefficients(
            tp, fp, fn, images, used, ratio_means=ratio_means, pixels_per_image=pixels
        )
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

    def on_epoch_end(self, epoch, logs=None):
        for key in (self.loss.state.name, f"val_{self.loss.state.name}"):
            (logs or {}).pop(key, None)
        super().on_epoch_end(epoch, logs)

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
            "statistic": self.statistic,
            "counts": self.counts,
            "beta2_statistic": self.beta2_statistic,
            "guard_scale": self.guard_scale,
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
