# Over 600 lines because the four search modes (exact, hybrid, first-order, naive) share one
# train step, the closed-form optimizer updates and the trajectory logger; splitting them apart
# would scatter the one algorithm of Fig. 2a over several files.
"""The exploratory adaptive-GLF rule (Seo et al. 2021, Sec. II-B, Fig. 2a) as a train step.

At every iteration the rule tries 27 actions (each coefficient -10 %, 0, +10 %): for each, one
optimizer step of the network with the GLF under that action's coefficients, scored by the
batch-averaged Euclidean distance ||p - y||_2 between prediction and label AFTER the step. The
argmin action's coefficients and network weights are kept. Three implementations:

``exact`` (the fast exact search). With counts pooled over the batch the GLF depends on the
    weights only through TP and FP (FN = sum(y) - TP), so by the chain rule each action's
    gradient is ``a_A grad(TP) + b_A grad(FP)`` with the scalars a_A = dL_A/dTP, b_A = dL_A/dFP.
    Two backward passes serve all 27 candidates; the candidate optimizer updates (Adam moments
    included) are elementwise and computed in closed form from the optimizer's state. Only the
    27 scoring forward passes remain. The chosen step is then applied by the real optimizer.
``first-order`` scores each candidate by d + grad(d) . delta_A (d the distance before the step,
    delta_A the candidate's weight change): one more backward pass and no scoring forwards.
``hybrid`` (ours, not the paper's) ranks the 27 candidates by the first-order score and scores
    only the ``top_k`` best of them exactly (``top_k`` scoring forwards instead of 27; equal
    first-order scores at the k-th place: the lower action index, :func:`lowest_k`); the
    exact argmin among those is taken, with the tie rule below. With ``top_k=27`` it is the
    exact search.
``naive`` the reference: 27 real optimizer steps (forward, backward, ``optimizer.apply``) each
    on a fresh copy of the network and optimizer state, scored, the best copy kept. It makes no
    use of the TP/FP trick or of the closed-form updates, and so checks both.

Scoring passes run through ``stateless_call``, so they leave the network's state alone (the
batch-norm moving averages and the dropout seed are updated once per iteration, by the training
forward pass, as in a plain step). In training mode (``score_training=True``, the default) every
candidate is scored with the training step's own forward pass: batch-norm batch statistics and
the very dropout mask the step trained with (the seed state before the step), so the 27 scores
differ only by the candidates' weights and scoring the same state twice gives the same scores.
``score_training=False`` scores in inference mode (dropout off, batch-norm moving averages).

Ties. The set of actions is ordered (alpha_p, alpha_n, beta2) in {-1, 0, +1}^3
lexicographically, but the order decides nothing: when the second-best score lies within
``tie_tolerance`` float32 machine epsilons (relative) of the best, the criterion cannot tell
the candidates apart at float32 resolution and the search keeps all three coefficients (the
action (0, 0, 0), whose network update is a plain step with the current coefficients). The
trajectory records, per step, how many candidates tied (``ties``) and the best-to-second gap
(``score_gap``).

Backends: TensorFlow and JAX (under JAX the search is a pure function of the train state, and
the coefficients travel in it as the compiled ``loss.state``). Limitations (checked, with clear errors): one replica (the candidate
updates would need all-reduced gradients; use the deterministic rule under ``tf.distribute``);
``per_image=False`` (the TP/FP factorisation needs pooled counts); no ``sample_weight``; for
``exact``/``first-order`` an Adam, AdamW or SGD optimizer without gradient clipping, EMA,
gradient accumulation or loss scaling (``naive`` takes any optimizer).
"""

from __future__ import annotations

import itertools

import keras
import numpy as np
from keras import ops

from keras_losses._base import register, soft_counts
from keras_losses.adaptive.compiled import check_binary, check_compiled, with_state
from keras_losses.adaptive.trajectory import (
    COEFFICIENTS,
    LIMITS,
    GLFTrajectoryRecorder,
    bound_state,
    glf_statistics,
)
from keras_losses.generalized import glf_from_counts

MODES = ("exact", "hybrid", "first-order", "naive")
# Fig. 2a: each coefficient -10 %, unchanged or +10 %.
DEFAULT_STEP = 0.1
ACTIONS = np.array(list(itertools.product((-1.0, 0.0, 1.0), repeat=3)), dtype="float32")  # (27, 3)
KEEP_ACTION = 13  # (0, 0, 0)
# float32 machine epsilon, 2^-23: the relative resolution of a float32 score.
FLOAT32_EPS = float(np.finfo(np.float32).eps)
# Ties: scores within this many float32 epsilons (relative to the best score) of the best are
# indistinguishable. The score sums n = h * w squared differences per image and averages over
# the batch in float32; a pairwise sum of n terms carries a relative rounding error of up to
# about log2(n) eps, halved by the square root, and the batch mean adds log2(batch): for the
# 48x48 lung patches in batches of 8, 11.2 / 2 + 3 = 8.6 eps. Rounded to 8 (ours).
DEFAULT_TIE_TOLERANCE = 8.0
# Hybrid search: candidates scored exactly after the first-order ranking (benchmarks/
# bench_adaptive_glf.py hybrid measures the agreement with the exact search for k = 1..5).
DEFAULT_TOP_K = 3


def action_text(index: int, step: float = DEFAULT_STEP) -> str:
    """Human-readable action, e.g. ``"x0.9 x1 x1.1"`` (alpha_p, alpha_n, beta2)."""
    return " ".join(f"x{1.0 + step * d:g}" for d in ACTIONS[int(index)])


def choose_action(scores, tolerance: float = DEFAULT_TIE_TOLERANCE, indices=None):
    """The search's decision from candidate scores, with the tie rule (any backend, traceable).

    Formula:
        best = min(scores),  tied = #{j : scores_j <= best + tolerance * eps32 * |best|}
        action = KEEP_ACTION if tied > 1 else indices[argmin(scores)]
        gap = second-smallest score - best (NaN with a single score)

    Args:
        scores: (n,) float32 scores, lower is better.
        tolerance: tie tolerance in float32 machine epsilons relative to the best score.
        indices: (n,) action index of each score (default: 0..n-1).

    Returns:
        ``(action, best_score, ties, gap)``: int32 action index, the best score, the number of
        candidates within the tolerance of the best (1 = no tie) and the best-to-second gap.
    """
    scores = ops.cast(scores, "float32")
    n = int(scores.shape[0])
    position = ops.cast(ops.argmin(scores), "int32")
    best = ops.min(scores)
    tol = float(tolerance) * FLOAT32_EPS * ops.abs(best)
    ties = ops.sum(ops.cast(scores <= best + tol, "int32"))
    if n > 1:
        ordered = ops.sort(scores)
        gap = ordered[1] - ordered[0]
    else:
        gap = ops.cast(float("nan"), "float32")
    chosen = position if indices is None else ops.cast(ops.take(indices, position), "int32")
    action = ops.where(ties > 1, ops.cast(KEEP_ACTION, "int32"), chosen)
    return action, best, ties, gap


def tie_choice(scores, tolerance: float = DEFAULT_TIE_TOLERANCE) -> int:
    """The action :func:`choose_action` takes, in numpy (the reference the tests use)."""
    scores = np.asarray(scores, np.float32)
    return KEEP_ACTION if _tied(scores, tolerance) else int(np.argmin(scores))


def _tied(scores, tolerance) -> bool:
    """Whether a second score lies within the tolerance of the best (float32, as in the step)."""
    scores = np.asarray(scores, np.float32)
    best = scores.min()
    tol = np.float32(np.float32(tolerance * FLOAT32_EPS) * np.abs(best))
    return int(np.sum(scores <= np.float32(best + tol))) > 1


def glf_count_derivatives(tp, fp, fn, alpha_p, alpha_n, beta2, smooth, smooth_dr=None):
    """dL/dTP and dL/dFP of the pooled GLF with FN = sum(y) - TP held to the labels.

    Formula (N = (1+beta2) TP, D = N + alpha_p FP + beta2 alpha_n FN,
    L = 1 - (N+s)/(D+s_dr), s the numerator smoothing, s_dr = s unless given):
        dL/dTP = -[(1+beta2)(D+s_dr) - (N+s)(1+beta2 - beta2 alpha_n)] / (D+s_dr)^2
        dL/dFP = (N+s) alpha_p / (D+s_dr)^2
    Coefficients may be vectors (one entry per candidate action).
    """
    smooth_dr = smooth if smooth_dr is None else smooth_dr
    num = (1.0 + beta2) * tp
    den = num + alpha_p * fp + beta2 * alpha_n * fn
    d2 = ops.square(den + smooth_dr)
    d_tp = -((1.0 + beta2) * (den + smooth_dr) - (num + smooth) * (1.0 + beta2 - beta2 * alpha_n)) / d2
    d_fp = (num + smooth) * alpha_p / d2
    return d_tp, d_fp


def lowest_k(scores, k: int):
    """Indices of the ``k`` lowest scores, lowest first (any backend, traceable).

    Ties, at the k-th place too, go to the lower index (the order of ACTIONS), as a stable
    sort: ``np.argsort(scores, kind="stable")[:k]``. Scores are compared as float32, so the
    rule decides only between scores equal to the last bit.
    """
    _, top = ops.top_k(-ops.cast(scores, "float32"), k=int(k), sorted=True)
    return ops.cast(top, "int32")


def _tensor(value):
    """A plain tensor holding a variable's current value (``ops.convert_to_tensor`` returns
    a Keras variable unchanged on the TensorFlow backend). Inside a ``StatelessScope`` (the
    JAX train step) this is the value the scope maps the variable to."""
    if isinstance(value, keras.Variable):
        value = value.value
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.convert_to_tensor(value)
    return ops.convert_to_tensor(value)


def _snapshot(value):
    """``_tensor`` read now: in a TensorFlow graph, a copy ordered before later assignments."""
    value = _tensor(value)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.identity(value)
    return value


def mean_distance(y_pred, y_true):
    """Batch mean of the per-image Euclidean distance ||p - y||_2 (the search's score)."""
    diff = ops.cast(y_pred, "float32") - ops.cast(y_true, "float32")
    axes = tuple(range(1, len(diff.shape)))
    return ops.mean(ops.sqrt(ops.sum(ops.square(diff), axis=axes) + 1e-12))


@register
class ExploratoryGLFModel(keras.Model):
    """A model wrapper whose ``train_step`` runs the exploratory GLF search (Fig. 2a).

    Compile it with a :class:`~keras_losses.GeneralizedLoss` (``per_image=False``); each
    ``fit`` step then picks the best of 27 coefficient actions and assigns the loss's
    coefficients. ``call`` is the wrapped network's, so prediction and evaluation are
    unchanged; ``model.network`` is the plain network. The wrapper saves as ``.keras`` and
    reloads with ``keras.saving.load_model`` after ``import keras_losses`` (the GLF's
    current coefficients travel in the compile config).

    Each train step returns, besides the loss and metrics, ``glf_*`` logs that
    :class:`ExploratoryGLFLogger` turns into the per-iteration trajectory.

    Args:
        network: the segmentation network (sigmoid output in [0, 1]).
        mode: "exact" (default), "hybrid", "first-order" or "naive"; see the module docstring.
        step: relative change of a coefficient per action. Default 0.1 (Fig. 2a, +-10 %).
        score_training: run scoring passes in training mode (batch statistics). Default True.
        bounds: ``[lo, hi]`` clip of every candidate coefficient. Default LIMITS = [1e-6, 1e6]
            (a numerical floor/ceiling so that a long run cannot underflow to 0, not in the
            paper, which has no bounds; the trajectory's ``*_bound`` columns record each step
            at it). Values inside LIMITS clip further (ours).
        top_k: for ``mode="hybrid"``, how many of the first-order-ranked candidates are
            scored exactly (equal first-order scores at the k-th place: the lower action index
            is scored, :func:`lowest_k`). Default DEFAULT_TOP_K (3); 1..27.
        tie_tolerance: scores within this many float32 machine epsilons (relative to the best
            score) of the best are a tie, and a tie keeps all three coefficients. Default
            DEFAULT_TIE_TOLERANCE (8, ours: the rounding bound of the score's float32 sums;
            see the module docstring). 0 counts exact ties only.

    Reference:
        S. Seo, M. Bassenne, L. Xing, IEEE TMI 40(2), 2021, Sec. II-B and Fig. 2a.

    Example:
        >>> import keras, numpy as np, keras_losses
        >>> x = np.random.default_rng(0).random((8, 16, 16, 1)).astype("float32")
        >>> y = (x > 0.7).astype("float32")  # shape: (8, 16, 16, 1)
        >>> network = keras.Sequential(
        ...     [keras.Input((16, 16, 1)), keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")]
        ... )
        >>> loss = keras_losses.GeneralizedLoss()  # starts at the Dice values (1, 1, 1)
        >>> model = ExploratoryGLFModel(network)
        >>> model.compile(optimizer="adam", loss=loss)  # adds loss.state to the metrics
        >>> _ = model.fit(x, y, batch_size=4, epochs=1, verbose=0)  # 2 steps, 2 searches
        >>> # each step multiplies each coefficient by 0.9, 1 or 1.1
        >>> all(0.81 - 1e-6 <= float(v) <= 1.21 + 1e-6 for v in loss.coefficients.values())
        True
        >>> model.network is network
        True
    """

    def __init__(
        self,
        network,
        mode="exact",
        step=DEFAULT_STEP,
        score_training=True,
        bounds=LIMITS,
        top_k=DEFAULT_TOP_K,
        tie_tolerance=DEFAULT_TIE_TOLERANCE,
        **kwargs,
    ):
        if isinstance(network, dict):
            network = keras.saving.deserialize_keras_object(network)
        kwargs.setdefault("name", f"{network.name}_glf_exp")
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(
                f"ExploratoryGLFModel: `mode` must be one of {MODES}; received {mode!r}"
            )
        if not 0 < float(step) < 1:
            raise ValueError(f"ExploratoryGLFModel: `step` must be in (0, 1); received {step}")
        lo, hi = (float(b) for b in bounds)
        if not 0 < lo <= hi or lo < LIMITS[0] or hi > LIMITS[1]:
            raise ValueError(
                f"ExploratoryGLFModel: `bounds` must satisfy {LIMITS[0]:g} <= lo <= hi <= {LIMITS[1]:g}; received {bounds}"
            )
        if not 1 <= int(top_k) <= len(ACTIONS) or int(top_k) != top_k:
            raise ValueError(
                f"ExploratoryGLFModel: `top_k` must be an integer in 1..{len(ACTIONS)}; received {top_k}"
            )
        if not float(tie_tolerance) >= 0 or not np.isfinite(float(tie_tolerance)):
            raise ValueError(
                "ExploratoryGLFModel: `tie_tolerance` must be a finite number >= 0 (float32 "
                f"epsilons); received {tie_tolerance}"
            )
        self.network = network
        self.tie_tolerance = float(tie_tolerance)
        self.mode = mode
        self.top_k = int(top_k)
        self.step = float(step)
        self.score_training = bool(score_training)
        self.bounds = (lo, hi)
        self._multipliers = 1.0 + self.step * ACTIONS  # (27, 3)
        if network.built:  # the wrapper adds no weights of its own
            self.built = True

    def call(self, inputs, training=None):
        return self.network(inputs, training=training)

    def get_config(self):
        return {
            "network": keras.saving.serialize_keras_object(self.network),
            "mode": self.mode,
            "step": self.step,
            "score_training": self.score_training,
            "bounds": list(self.bounds),
            "top_k": self.top_k,
            "tie_tolerance": self.tie_tolerance,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # ------------------------------------------------------------------ checks
    def _glf(self):
        from keras_losses.generalized import GeneralizedLoss

        loss = self.loss
        if not isinstance(loss, GeneralizedLoss):
            raise ValueError(
                "ExploratoryGLFModel must be compiled with a keras_losses.GeneralizedLoss; "
                f"received loss={loss!r}"
            )
        if loss.per_image:
            raise ValueError(
                "ExploratoryGLFModel needs a GeneralizedLoss with per_image=False (the search "
                "factorises the gradient through the pooled TP and FP); received per_image=True"
            )
        check_binary(loss, "ExploratoryGLFModel", self)
        return loss

    def _check_optimizer(self):
        opt = self.optimizer
        strategy = getattr(self, "distribute_strategy", None)
        replicas = getattr(strategy, "num_replicas_in_sync", 1)
        if keras.backend.backend() == "tensorflow" and replicas > 1:
            raise ValueError(
                "The exploratory GLF search runs on one replica only (received a strategy with "
                f"{replicas} replicas); use --loss glf-det under tf.distribute"
            )
        if self.mode == "naive":
            return
        name = type(opt).__name__
        if not isinstance(opt, (keras.optimizers.Adam, keras.optimizers.SGD)) or isinstance(
            opt, keras.optimizers.LossScaleOptimizer
        ):
            raise ValueError(
                f"ExploratoryGLFModel(mode={self.mode!r}) computes the candidate updates in closed "
                f"form for Adam, AdamW and SGD; received optimizer {name}. Use mode='naive' for "
                "other optimizers"
            )
        for attr in ("clipnorm", "clipvalue", "global_clipnorm", "gradient_accumulation_steps"):
            if getattr(opt, attr, None):
                raise ValueError(
                    f"ExploratoryGLFModel(mode={self.mode!r}) does not support optimizer "
                    f"{attr}={getattr(opt, attr)!r}; received it on {name}"
                )
        if getattr(opt, "use_ema", False):
            raise ValueError(
                f"ExploratoryGLFModel(mode={self.mode!r}) does not support use_ema=True on {name}"
            )

    def _naive_search_stateless(self, x, y, glf):
        return _naive_search_stateless_impl(self, x, y, glf)

    def _check_backend(self):
        backend = keras.backend.backend()
        if backend not in ("tensorflow", "jax"):
            raise ValueError(
                f"ExploratoryGLFModel runs under the TensorFlow and JAX backends; the Keras "
                f"backend is {backend!r}"
            )

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
        """``keras.Model.compile``, with ``loss.state`` added to the metrics of a GLF loss (the
        search assigns the coefficients inside the step: the state must be carried by it)."""
        from keras_losses.generalized import GeneralizedLoss

        self._check_backend()
        if isinstance(loss, GeneralizedLoss):
            check_binary(loss, "ExploratoryGLFModel", self)
            metrics = with_state(metrics, loss)
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def compile_from_config(self, config):
        # What keras.Model does, which it skips for a model whose compile() is overridden.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def _candidates(self, glf):
        """(27, 3) candidate coefficients: current x multipliers, clipped to the bounds."""
        current = ops.stack(
            [
                _tensor(glf.alpha_p_var),
                _tensor(glf.alpha_n_var),
                _tensor(glf.beta2_var),
            ]
        )
        return ops.clip(current[None, :] * _tensor(self._multipliers), *self.bounds)

    # ------------------------------------------------------------------ candidate updates
    def _candidate_weights(self, grads, variables):
        """The weights the optimizer would produce from ``grads``, without changing any state.

        Mirrors keras.optimizers.Adam/AdamW/SGD ``update_step`` (and the base class's
        decoupled weight decay, applied first) elementwise.
        """
        opt = self.optimizer
        lr = ops.cast(opt.learning_rate, "float32")
        new = []
        if isinstance(opt, keras.optimizers.Adam):
            t = ops.cast(opt.iterations + 1, "float32")
            b1, b2 = float(opt.beta_1), float(opt.beta_2)
            alpha = lr * ops.sqrt(1.0 - ops.power(b2, t)) / (1.0 - ops.power(b1, t))
            for g, var in zip(grads, variables, strict=True):
                w = _tensor(var)
                if opt.weight_decay is not None and opt._use_weight_decay(var):
                    w = w - w * ops.cast(opt.weight_decay, "float32") * lr
                idx = opt._get_variable_index(var)
                m, v = _tensor(opt._momentums[idx]), _tensor(opt._velocities[idx])
                m = m + (g - m) * (1.0 - b1)
                v = v + (ops.square(g) - v) * (1.0 - b2)
                if opt.amsgrad:
                    v = ops.maximum(_tensor(opt._velocity_hats[idx]), v)
                new.append(w - (m * alpha) / (ops.sqrt(v) + opt.epsilon))
            return new
        momentum = float(opt.momentum)
        for g, var in zip(grads, variables, strict=True):
            w = _tensor(var)
            if opt.weight_decay is not None and opt._use_weight_decay(var):
                w = w - w * ops.cast(opt.weight_decay, "float32") * lr
            if momentum == 0:
                new.append(w - g * lr)
                continue
            m = _tensor(opt.momentums[opt._get_variable_index(var)])
            m = m * momentum - g * lr
            new.append(w + (m * momentum - g * lr) if opt.nesterov else w + m)
        return new

    # ------------------------------------------------------------------ train step
    def train_step(self, *args):
        # Keras's TensorFlow trainer calls train_step(data) and keeps the state in the
        # variables; the JAX trainer calls train_step(state, data) and expects the new state.
        if keras.backend.backend() == "jax":
            return self._stateless_train_step(*args)
        return self._search_step(*args)

    def _stateless_train_step(self, state, data):
        """The search as a pure function of the train state (JAX): the stateful step run in a
        ``StatelessScope`` that maps every variable to its state value and collects what the
        step assigns (weights, optimizer moments, batch-norm statistics, the dropout seed,
        metrics and the GLF coefficients, which live in the compiled ``loss.state``)."""
        trainable, non_trainable, optimizer_values, metrics_values = state
        groups = (
            self.trainable_variables,
            self.non_trainable_variables,
            self.optimizer.variables,
            self.metrics_variables,
        )
        mapping = [
            (variable, value)
            for variables, values in zip(groups, state, strict=True)
            for variable, value in zip(variables, values, strict=True)
        ]
        with keras.StatelessScope(state_mapping=mapping) as scope:
            logs = self._search_step(data)
        new_state = tuple(
            [scope.get_current_value(v) for v in variables] for variables in groups
        )
        return logs, new_state

    def _search_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if sample_weight is not None:
            raise ValueError(
                "ExploratoryGLFModel does not support sample_weight; received one in the data"
            )
        glf = self._glf()
        self._check_backend()
        self._check_optimizer()
        y = ops.cast(y, "float32")
        if not self.optimizer.built:  # the closed-form updates read its moments
            self.optimizer.build(self.network.trainable_variables)
        if self.mode == "naive":
            y_pred, tp, fp, fn, decision, cand = self._naive_search(x, y, glf)
        else:
            y_pred, tp, fp, fn, decision, cand = self._fast_search(x, y, glf)
        index, score, ties, gap = decision
        used = self._candidates(glf)[KEEP_ACTION]
        chosen = cand[index]
        loss_value = glf_from_counts(
            tp, fp, fn, used[0], used[1], used[2], glf.smooth_nr, glf.smooth_dr
        )
        self._loss_tracker.update_state(loss_value, sample_weight=ops.shape(y)[0])
        # before the assignments: loss.state records the ratios under the used coefficients
        logs = dict(self.compute_metrics(x, y, y_pred, sample_weight=None))
        glf.alpha_p_var.assign(chosen[0])
        glf.alpha_n_var.assign(chosen[1])
        glf.beta2_var.assign(chosen[2])
        logs.update(
            {
                "glf_used_alpha_p": used[0],
                "glf_used_alpha_n": used[1],
                "glf_used_beta2": used[2],
                "glf_next_alpha_p": chosen[0],
                "glf_next_alpha_n": chosen[1],
                "glf_next_beta2": chosen[2],
                "glf_action_index": ops.cast(index, "float32"),
                "glf_score": score,
                "glf_ties": ops.cast(ties, "float32"),
                "glf_gap": gap,
                "glf_tp": tp,
                "glf_fp": fp,
                "glf_fn": fn,
                "glf_images": ops.cast(ops.shape(y)[0], "float32"),
            }
        )
        return logs

    def _forward_and_gradients(self, x, y, trainable_values, non_trainable_values, outputs):
        """The training forward pass (batch statistics, dropout) from the given values, and the
        gradients of scalars of it with respect to the trainable weights.

        ``outputs`` names the scalars: "tp", "fp" (pooled soft counts), "reg" (the network's
        own losses, if it has any) and "dist" (:func:`mean_distance`). Returns ``(y_pred,
        updated non-trainable values, (tp, fp, fn), values, gradients)`` with ``values`` and
        ``gradients`` dicts by name (a gradient: one tensor per trainable weight).
        """
        net = self.network

        def forward(weights):
            y_pred, updated, losses = net.stateless_call(
                weights, non_trainable_values, x, training=True, return_losses=True
            )
            y_pred = ops.cast(y_pred, "float32")
            tp, fp, fn = soft_counts(y, y_pred, per_image=False)
            scalars = {"tp": tp, "fp": fp}
            if "reg" in outputs and losses:
                scalars["reg"] = ops.sum(ops.stack([ops.sum(v) for v in losses]))
            if "dist" in outputs:
                scalars["dist"] = mean_distance(y_pred, y)
            return scalars, (y_pred, updated, (tp, fp, fn), scalars)

        if keras.backend.backend() == "jax":
            import jax

            gradients, (y_pred, updated, counts, values) = jax.jacrev(forward, has_aux=True)(
                list(trainable_values)
            )
            return y_pred, updated, counts, values, gradients
        import tensorflow as tf

        with tf.GradientTape(persistent=True) as tape:
            tape.watch(trainable_values)
            values, (y_pred, updated, counts, _) = forward(trainable_values)
        gradients = {
            name: [
                ops.zeros_like(w) if g is None else g
                for g, w in zip(tape.gradient(v, trainable_values), trainable_values, strict=True)
            ]
            for name, v in values.items()
        }
        del tape
        return y_pred, updated, counts, values, gradients

    def _fast_search(self, x, y, glf):
        net = self.network
        variables = net.trainable_variables
        trainable_values = [_snapshot(v) for v in variables]
        # The state the training pass starts from (dropout seed included): scoring in training
        # mode reuses it, so every candidate sees the step's own dropout mask.
        before = [_snapshot(v) for v in net.non_trainable_variables]
        ranked = self.mode in ("first-order", "hybrid")
        y_pred, updated, (tp, fp, fn), values, grads = self._forward_and_gradients(
            x, y, trainable_values, before, ("tp", "fp", "reg", "dist") if ranked else ("tp", "fp", "reg")
        )
        # the training pass's updates: batch-norm moving averages, the dropout seed
        for variable, value in zip(net.non_trainable_variables, updated, strict=True):
            variable.assign(value)
        g_tp, g_fp = grads["tp"], grads["fp"]
        g_reg = grads.get("reg")
        cand = self._candidates(glf)  # (27, 3)
        d_tp, d_fp = glf_count_derivatives(
            tp, fp, fn, cand[:, 0], cand[:, 1], cand[:, 2], glf.smooth_nr, glf.smooth_dr
        )

        def grads_of(i):
            out = [d_tp[i] * a + d_fp[i] * b for a, b in zip(g_tp, g_fp, strict=True)]
            return out if g_reg is None else [g + r for g, r in zip(out, g_reg, strict=True)]

        scoring_state = before if self.score_training else list(updated)

        def score_of(i):
            weights = self._candidate_weights(grads_of(i), variables)
            out, _ = net.stateless_call(weights, scoring_state, x, training=self.score_training)
            return mean_distance(out, y)

        def exact_scores(indices, n):
            # a loop, so that the graph holds one scoring pass rather than n copies of it
            def body(j, scores):
                return ops.slice_update(scores, [j], ops.reshape(score_of(indices[j]), (1,)))

            return ops.fori_loop(0, n, body, ops.zeros((n,), "float32"))

        if self.mode == "exact":
            decision = choose_action(
                exact_scores(ops.arange(len(ACTIONS), dtype="int32"), len(ACTIONS)),
                self.tie_tolerance,
            )
        else:
            first = self._first_order_scores(
                values["dist"], grads["dist"], d_tp, d_fp, g_tp, g_fp, g_reg, variables
            )
            if self.mode == "first-order":
                decision = choose_action(first, self.tie_tolerance)
            else:
                # the top_k lowest first-order scores, then the tie rule on their exact scores
                top = lowest_k(first, self.top_k)
                decision = choose_action(
                    exact_scores(top, self.top_k), self.tie_tolerance, indices=top
                )
        self.optimizer.apply(grads_of(decision[0]), variables)
        return y_pred, tp, fp, fn, decision, cand

    def _first_order_scores(self, dist, g_dist, d_tp, d_fp, g_tp, g_fp, g_reg, variables):
        """d + grad(d) . delta_A for all 27 actions at once.

        The closed-form updates are elementwise, so they broadcast over a leading candidate
        axis: one batched update per variable instead of 27 (the per-op overhead, not the
        arithmetic, dominates on a CPU).
        """
        scores = dist
        for k, (a, b, gd, var) in enumerate(zip(g_tp, g_fp, g_dist, variables, strict=True)):
            shape = (-1,) + (1,) * len(a.shape)
            g = ops.reshape(d_tp, shape) * a[None] + ops.reshape(d_fp, shape) * b[None]
            if g_reg is not None:
                g = g + g_reg[k][None]
            (w,) = self._candidate_weights([g], [var])  # (27, *var.shape)
            delta = ops.reshape((w - _tensor(var)[None]) * gd[None], (len(ACTIONS), -1))
            scores = scores + ops.sum(delta, axis=1)
        return scores

    def candidate_scores(self, x, y, training: bool | None = None):
        """Scores of the 27 actions at the current state, by the exact and first-order rules.

        Changes no state (the forward pass runs through ``stateless_call``), so it can be
        called before a training step to compare the rules on the same batch; the train step
        scores exactly these values. ``training`` overrides ``score_training`` (to compare the
        scoring modes on one state). Returns ``(exact_scores, first_order_scores)``, each of
        shape (27,).
        """
        score_training = self.score_training if training is None else bool(training)
        glf = self._glf()
        self._check_optimizer()
        if not self.optimizer.built:
            self.optimizer.build(self.network.trainable_variables)
        net = self.network
        variables = net.trainable_variables
        trainable_values = [_tensor(v) for v in variables]
        non_trainable_values = [_tensor(v) for v in net.non_trainable_variables]
        y = ops.cast(y, "float32")
        _, updated, (tp, fp, fn), values, grads = self._forward_and_gradients(
            x, y, trainable_values, non_trainable_values, ("tp", "fp", "dist")
        )
        g_tp, g_fp = grads["tp"], grads["fp"]
        cand = self._candidates(glf)
        d_tp, d_fp = glf_count_derivatives(
            tp, fp, fn, cand[:, 0], cand[:, 1], cand[:, 2], glf.smooth_nr, glf.smooth_dr
        )
        # as in the train step: training mode reuses the step's state (its dropout mask),
        # inference mode the moving averages after the training pass
        scoring_state = non_trainable_values if score_training else list(updated)
        exact = []
        for i in range(len(ACTIONS)):
            grads_i = [d_tp[i] * a + d_fp[i] * b for a, b in zip(g_tp, g_fp, strict=True)]
            weights = self._candidate_weights(grads_i, variables)
            out, _ = net.stateless_call(weights, scoring_state, x, training=score_training)
            exact.append(mean_distance(out, y))
        first = self._first_order_scores(
            values["dist"], grads["dist"], d_tp, d_fp, g_tp, g_fp, None, variables
        )
        return ops.stack(exact), first

    @staticmethod
    def hybrid_choice(
        exact_scores, first_order_scores, top_k: int, tie_tolerance: float = DEFAULT_TIE_TOLERANCE
    ) -> int:
        """The action the hybrid search takes, from the two score vectors (numpy reference).

        The ``top_k`` candidates with the lowest first-order scores (a tie at the k-th place:
        lower index first), then the one of them with the lowest exact score; a tie among
        their exact scores (within ``tie_tolerance``, see :func:`tie_choice`) keeps all three
        coefficients (KEEP_ACTION).
        """
        exact = np.asarray(exact_scores, np.float32)
        order = np.argsort(np.asarray(first_order_scores, np.float64), kind="stable")[:top_k]
        if _tied(exact[order], tie_tolerance):
            return KEEP_ACTION
        return int(order[int(np.argmin(exact[order]))])

    def _naive_search(self, x, y, glf):
        """27 real optimizer steps, each from a fresh copy of the pre-step state."""
        if keras.backend.backend() == "jax":
            return self._naive_search_stateless(x, y, glf)
        import tensorflow as tf

        net, opt = self.network, self.optimizer
        variables = net.trainable_variables
        state = [*net.trainable_variables, *net.non_trainable_variables, *opt.variables]
        snapshot = [tf.identity(_tensor(v)) for v in state]
        before = snapshot[len(variables) : len(variables) + len(net.non_trainable_variables)]
        cand = self._candidates(glf)
        n = len(ACTIONS)

        def candidate_step(i):
            for var, value in zip(state, snapshot, strict=True):
                var.assign(value)
            with tf.GradientTape() as tape:
                y_pred = net(x, training=True)
                tp, fp, fn = soft_counts(y, y_pred, per_image=False)
                loss = glf_from_counts(
                    tp, fp, fn, cand[i, 0], cand[i, 1], cand[i, 2], glf.smooth_nr, glf.smooth_dr
                )
                if net.losses:
                    loss = loss + ops.sum(ops.stack(net.losses))
            grads = tape.gradient(loss, variables)
            opt.apply(grads, variables)
            y_pred = ops.cast(y_pred, "float32")
            # training mode: the pre-step state, i.e. the dropout mask this step trained with
            scoring_state = (
                before if self.score_training else [_tensor(v) for v in net.non_trainable_variables]
            )
            out, _ = net.stateless_call(
                [_tensor(v) for v in variables], scoring_state, x, training=self.score_training
            )
            after = [tf.identity(_tensor(v)) for v in state]
            return mean_distance(out, y), after, y_pred, tp, fp, fn

        # One full, independent step per candidate (restore, forward, backward, optimizer
        # step, score), keeping the state of the best so far and that of the keep action (a
        # tie keeps the coefficients). A while loop, so that the graph holds one candidate
        # step rather than 27 copies of it.
        def body(i, scores, best_score, best_state, keep_state, outputs):
            score, after, y_pred, tp, fp, fn = candidate_step(i)
            better = score < best_score
            best_state = [tf.where(better, a, b) for a, b in zip(after, best_state, strict=True)]
            is_keep = tf.equal(i, KEEP_ACTION)
            keep_state = [tf.where(is_keep, a, b) for a, b in zip(after, keep_state, strict=True)]
            return (
                i + 1,
                scores.write(i, score),
                tf.where(better, score, best_score),
                best_state,
                keep_state,
                [y_pred, tp, fp, fn],
            )

        y_shape = tf.shape(y)
        init = (
            tf.constant(0),
            tf.TensorArray(tf.float32, size=n),
            tf.constant(np.inf, tf.float32),
            snapshot,
            snapshot,
            [tf.zeros(y_shape, tf.float32), tf.zeros(()), tf.zeros(()), tf.zeros(())],
        )
        _, scores, _, best_state, keep_state, (y_pred, tp, fp, fn) = tf.while_loop(
            lambda i, *_: i < n, body, init
        )
        decision = choose_action(scores.stack(), self.tie_tolerance)
        keep = tf.equal(decision[0], KEEP_ACTION)
        for var, a, b in zip(state, keep_state, best_state, strict=True):
            var.assign(tf.where(keep, a, b))
        return y_pred, tp, fp, fn, decision, cand


def _naive_search_stateless_impl(model, x, y, glf):
    """The naive reference as a pure function (JAX): 27 real optimizer steps, each with
    ``optimizer.stateless_apply`` from the same pre-step values, unrolled (27 copies of a
    training step in the compiled graph: a reference, not a fast path)."""
    import jax

    net, opt = model.network, model.optimizer
    variables = net.trainable_variables
    weights = [_snapshot(v) for v in variables]
    before = [_snapshot(v) for v in net.non_trainable_variables]
    opt_values = [_snapshot(v) for v in opt.variables]
    cand = model._candidates(glf)
    scores, steps = [], []
    for i in range(len(ACTIONS)):

        def loss_of(w, i=i):
            p, updated, losses = net.stateless_call(
                w, before, x, training=True, return_losses=True
            )
            p = ops.cast(p, "float32")
            tp, fp, fn = soft_counts(y, p, per_image=False)
            value = glf_from_counts(
                tp, fp, fn, cand[i, 0], cand[i, 1], cand[i, 2], glf.smooth_nr, glf.smooth_dr
            )
            if losses:
                value = value + ops.sum(ops.stack([ops.sum(v) for v in losses]))
            return value, (p, updated, tp, fp, fn)

        grads, aux = jax.grad(loss_of, has_aux=True)(weights)
        new_weights, new_opt = opt.stateless_apply(opt_values, grads, weights)
        scoring_state = before if model.score_training else aux[1]
        out, _ = net.stateless_call(new_weights, scoring_state, x, training=model.score_training)
        scores.append(mean_distance(out, y))
        steps.append((new_weights, new_opt))
    decision = choose_action(ops.stack(scores), model.tie_tolerance)
    index = decision[0]
    for k, targets in ((0, variables), (1, opt.variables)):
        for j, variable in enumerate(targets):
            variable.assign(ops.take(ops.stack([step[k][j] for step in steps]), index, axis=0))
    y_pred, updated, tp, fp, fn = aux  # the training pass is the same for every candidate
    for variable, value in zip(net.non_trainable_variables, updated, strict=True):
        variable.assign(value)
    return y_pred, tp, fp, fn, decision, cand


@register
class ExploratoryGLFLogger(GLFTrajectoryRecorder):
    """Record the trajectory of an :class:`ExploratoryGLFModel` run (one row per iteration).

    Reads the ``glf_*`` values the search's train step returns, removes the raw ones from
    the logs (so the progress bar shows only the coefficients and driving statistics) and
    writes rows as described in :mod:`keras_losses.adaptive.trajectory`.

    Args:
        loss: the compiled :class:`~keras_losses.GeneralizedLoss`.
        step: the search's relative step, for the action text. Default 0.1.
        csv_path, tensorboard_dir, state_path: as for ``GLFTrajectoryRecorder``.

    Example:
        >>> import keras, numpy as np, keras_losses
        >>> x = np.random.default_rng(0).random((8, 16, 16, 1)).astype("float32")
        >>> y = (x > 0.7).astype("float32")  # shape: (8, 16, 16, 1)
        >>> network = keras.Sequential(
        ...     [keras.Input((16, 16, 1)), keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")]
        ... )
        >>> loss = keras_losses.GeneralizedLoss()  # starts at the Dice values (1, 1, 1)
        >>> model = ExploratoryGLFModel(network)
        >>> model.compile(optimizer="adam", loss=loss)
        >>> logger = ExploratoryGLFLogger(loss, csv_path="glf.csv")
        >>> _ = model.fit(x, y, batch_size=4, epochs=1, callbacks=[logger], verbose=0)
        >>> [row["iteration"] for row in logger.rows]  # one row per step, also in glf.csv
        [1, 2]
        >>> sorted(k for k in logger.rows[0] if k.startswith("next_"))  # coefficients set
        ['next_alpha_n', 'next_alpha_p', 'next_beta2']
    """

    RAW_KEYS = (
        "glf_used_alpha_p",
        "glf_used_alpha_n",
        "glf_used_beta2",
        "glf_next_alpha_p",
        "glf_next_alpha_n",
        "glf_next_beta2",
        "glf_action_index",
        "glf_score",
        "glf_ties",
        "glf_gap",
        "glf_tp",
        "glf_fp",
        "glf_fn",
        "glf_images",
    )

    def __init__(
        self, loss, step=DEFAULT_STEP, csv_path=None, tensorboard_dir=None, state_path=None
    ):
        if isinstance(loss, dict):
            loss = keras.saving.deserialize_keras_object(loss)
        super().__init__(
            loss, csv_path=csv_path, tensorboard_dir=tensorboard_dir, state_path=state_path
        )
        self.step = float(step)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if not isinstance(self.model, ExploratoryGLFModel):
            raise ValueError(
                "ExploratoryGLFLogger records an ExploratoryGLFModel's search; received a "
                f"{type(self.model).__name__} (use prepare_adaptive_glf(..., rule='exp'))"
            )
        check_compiled(self.model, self.loss, type(self).__name__)

    def on_train_batch_end(self, batch, logs=None):
        logs = logs if logs is not None else {}
        missing = [k for k in self.RAW_KEYS if k not in logs]
        if missing:
            raise ValueError(
                "ExploratoryGLFLogger needs the logs of an ExploratoryGLFModel train step; "
                f"missing {missing} (is the model an ExploratoryGLFModel?)"
            )
        raw = {k: float(logs.pop(k)) for k in self.RAW_KEYS}
        used = {c: raw[f"glf_used_{c}"] for c in COEFFICIENTS}
        stats = glf_statistics(
            raw["glf_tp"], raw["glf_fp"], raw["glf_fn"], used["alpha_p"], used["alpha_n"]
        )
        lo, hi = getattr(self.model, "bounds", LIMITS)
        for c in COEFFICIENTS:
            stats[f"{c}_bound"] = bound_state(raw[f"glf_next_{c}"], lo, hi)
        row = {
            "batch": batch + 1,
            **used,
            **{f"next_{c}": raw[f"glf_next_{c}"] for c in COEFFICIENTS},
            "action": action_text(int(raw["glf_action_index"]), self.step),
            "tp": raw["glf_tp"],
            "fp": raw["glf_fp"],
            "fn": raw["glf_fn"],
            "images": raw["glf_images"],
            **stats,
            "score": raw["glf_score"],
            "ties": int(raw["glf_ties"]),
            "score_gap": raw["glf_gap"],
        }
        self.record(row, logs)

    def on_epoch_end(self, epoch, logs=None):
        for key in (*self.RAW_KEYS, f"val_{self.loss.state.name}"):
            (logs or {}).pop(key, None)
        super().on_epoch_end(epoch, logs)

    def get_config(self):
        return {
            "loss": keras.saving.serialize_keras_object(self.loss),
            "step": self.step,
            "csv_path": self.csv_path,
            "tensorboard_dir": self.tensorboard_dir,
            "state_path": self.state_path,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
