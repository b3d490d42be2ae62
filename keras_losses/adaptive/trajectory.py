"""The per-iteration record of an adaptive GLF run: statistics, CSV, TensorBoard, resume state.

Both adaptive rules log the same row after every optimization step (one row per iteration):

    iteration, epoch, batch      optimizer step (1-based), epoch (1-based), batch in the epoch
    alpha_p, alpha_n, beta2      the coefficients the step trained with
    next_alpha_p, ...            the coefficients the rule chose for the next step
    action                       what the rule did (e.g. "x0.5 x1 x1.25")
    tp, fp, fn, images           soft counts pooled over the (global) batch; images in the batch
    precision, recall            TP/(TP+FP), TP/(TP+FN)
    tp_fp, tp_fn                 <TP/FP>, <TP/FN> (ratio of the batch means = ratio of the sums)
    p_r_ratio                    weighted precision / weighted recall, P_ap / R_an
    rule_p, rule_n, rule_b       deterministic rule only: the statistics it banded for alpha_P,
                                 alpha_N, beta^2 (per its options: per-image or pooled, soft or
                                 hard counts, P_ap/R_an or beta^2 P_ap/R_an)
    guard                        deterministic rule only: coefficients the divergence guard froze
                                 ("alpha_p alpha_n", "alpha_p", ... or empty)
    alpha_p_bound, ...           where the next value sits: "floor"/"ceiling" (the numeric limits
                                 LIMITS), "lo"/"hi" (a clip bound given by the user) or empty
    score                        exploratory rule only: distance ||p - y|| of the chosen action
    ties, score_gap              exploratory rule only: candidates within the tie tolerance of
                                 the best score (1 = no tie; a tie keeps the coefficients) and
                                 the second-best minus the best score

The rows go to ``glf_trajectory.csv`` (rewritten atomically at every epoch end), to
TensorBoard scalars ``glf/<name>`` at step = iteration, and the three coefficients of the
last iteration to the Keras logs as ``glf_alpha_p``, ``glf_alpha_n``, ``glf_beta2`` (so the
progress bar, History and the run's ``history.csv`` carry them; the statistics stay in the
CSV and TensorBoard, to keep the progress bar to a few numbers). ``glf_state.json`` keeps the coefficients at the
end of every epoch so a resumed run (``BackupAndRestore``) continues from them.
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from pathlib import Path

import keras
import numpy as np

COEFFICIENTS = ("alpha_p", "alpha_n", "beta2")
STATISTICS = ("precision", "recall", "tp_fp", "tp_fn", "p_r_ratio")
BOUND_FIELDS = tuple(f"{c}_bound" for c in COEFFICIENTS)
TEXT_FIELDS = ("action", "guard", *BOUND_FIELDS)
# Numeric floor and ceiling of every adaptive coefficient (ours, not the paper's, which has
# no bounds): far from any value a working rule visits, and inside float32, so that a long
# run never crashes (beta^2 halved at every step underflows to 0 in float32 after ~150 steps,
# and a coefficient of 0 is refused). How often a run sits there is logged per step.
LIMITS = (1e-6, 1e6)
CSV_FIELDS = (
    "iteration",
    "epoch",
    "batch",
    *COEFFICIENTS,
    *(f"next_{c}" for c in COEFFICIENTS),
    "action",
    "tp",
    "fp",
    "fn",
    "images",
    *STATISTICS,
    "rule_p",
    "rule_n",
    "rule_b",
    "guard",
    *BOUND_FIELDS,
    "score",
    "ties",
    "score_gap",
)
# Only the coefficients go into the Keras logs (progress bar, History, history.csv): the
# statistics that drive the rule are in glf_trajectory.csv and TensorBoard, one row per step,
# and twelve numbers per step would make the progress bar unreadable.
LOG_KEYS = COEFFICIENTS
TRAJECTORY_CSV = "glf_trajectory.csv"
STATE_JSON = "glf_state.json"


def glf_statistics(tp, fp, fn, alpha_p, alpha_n, eps: float = 1e-6) -> dict[str, float]:
    """The batch statistics that drive the deterministic rule (Seo et al. 2021, Fig. 2b).

    Formula:
        precision = TP / (TP + FP),            recall = TP / (TP + FN)
        <TP/FP>   = (TP + eps) / (FP + eps),   <TP/FN> = (TP + eps) / (FN + eps)
        P_ap      = TP / (TP + alpha_p FP),    R_an   = TP / (TP + alpha_n FN)
        p_r_ratio = P_ap / R_an = (TP + alpha_n FN + eps) / (TP + alpha_p FP + eps)

    With counts pooled over the batch, the ratio of batch means <TP>/<FP> equals the ratio
    of the sums; ``eps`` keeps the ratios finite on empty masks (0/0 gives 1, "balanced").
    """
    tp, fp, fn = float(tp), float(fp), float(fn)
    return {
        "precision": (tp + eps) / (tp + fp + eps),
        "recall": (tp + eps) / (tp + fn + eps),
        "tp_fp": (tp + eps) / (fp + eps),
        "tp_fn": (tp + eps) / (fn + eps),
        "p_r_ratio": (tp + alpha_n * fn + eps) / (tp + alpha_p * fp + eps),
    }


def read_trajectory(path) -> list[dict]:
    """Rows of a ``glf_trajectory.csv`` with numbers as floats (``action`` stays text)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"GLF trajectory {path} does not exist")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = []
    for row in rows:
        out.append(
            {
                k: (v if k in TEXT_FIELDS else (float(v) if v not in ("", None) else math.nan))
                for k, v in row.items()
            }
        )
    return out


def _read_rows_as_written(path) -> list[dict]:
    """The rows of a trajectory CSV with each value as it was recorded (int, float, or text;
    an empty cell stays empty), so that a resumed run rewrites its earlier rows unchanged."""

    def parse(text: str):
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        return text

    with open(path, newline="", encoding="utf-8") as f:
        return [
            {k: v if k in TEXT_FIELDS or v in ("", None) else parse(v) for k, v in row.items()}
            for row in csv.DictReader(f)
        ]


def bound_state(value: float, lo: float | None, hi: float | None) -> str:
    """Where a float32 coefficient sits: "floor"/"ceiling" at the numeric LIMITS, "lo"/"hi" at
    another clip bound, "" inside."""
    value = float(np.float32(value))
    if lo is not None and value <= float(np.float32(lo)):
        return "floor" if float(np.float32(lo)) <= float(np.float32(LIMITS[0])) else "lo"
    if hi is not None and value >= float(np.float32(hi)):
        return "ceiling" if float(np.float32(hi)) >= float(np.float32(LIMITS[1])) else "hi"
    return ""


def coefficient_moves(rows, name: str) -> dict[str, int]:
    """How often coefficient ``name`` rose and fell: steps whose next value is above / below
    the one before (the first step's against the value it trained with, when the row has it).
    float32 values compared exactly: a rule that did not act leaves the value bit for bit."""
    rises = falls = 0
    now = rows[0].get(name) if rows else None
    for r in rows:
        nxt = np.float32(r[f"next_{name}"])
        if now is not None and not math.isnan(float(now)):
            rises += int(nxt > np.float32(now))
            falls += int(nxt < np.float32(now))
        now = nxt
    return {"rises": rises, "falls": falls}


def summarize_trajectory(rows, band=(0.5, 2.0)) -> dict:
    """What a trajectory did, for reports (Seo et al. 2021, Fig. 6: "The parameters alpha_P and
    alpha_N oscillate around 1 while the parameter beta^2 remains larger than 1").

    ``rows``: the rows of :func:`read_trajectory`, or the path of a ``glf_trajectory.csv``.
    Returns final values, per coefficient the fraction of steps whose next value sat at the
    floor/ceiling (LIMITS) or at a user clip bound, the fraction of steps the guard froze
    alpha_P/alpha_N, the fraction of steps alpha_P, alpha_N lay in ``band`` and beta^2 > 1, how
    often each coefficient rose and fell, and Fig. 6's pattern: ``alphas_oscillate`` when each
    alpha lay in ``band`` for most (> 50 %) of training AND rose at least once and fell at least
    once (a coefficient that never moved, e.g. one the guard held at 1, does not oscillate);
    ``pattern_held`` when, besides, beta^2 > 1 for most of training.
    """
    if isinstance(rows, (str, os.PathLike)):
        rows = read_trajectory(rows)
    n = len(rows)
    if n == 0:
        return {"steps": 0}
    out = {"steps": n, "final": {c: float(rows[-1][f"next_{c}"]) for c in COEFFICIENTS}}
    at = {}
    for c in COEFFICIENTS:
        states = [str(r.get(f"{c}_bound", "") or "") for r in rows]
        at[c] = {
            "floor_or_ceiling": sum(s in ("floor", "ceiling") for s in states) / n,
            "clip_bound": sum(s in ("lo", "hi") for s in states) / n,
        }
    out["at_bound_fraction"] = at
    out["max_at_bound_fraction"] = max(v["floor_or_ceiling"] + v["clip_bound"] for v in at.values())
    guard = [str(r.get("guard", "") or "") for r in rows]
    out["guard_fraction"] = {
        "alpha_p": sum("alpha_p" in g for g in guard) / n,
        "alpha_n": sum("alpha_n" in g for g in guard) / n,
    }
    lo, hi = band
    inside = {
        c: sum(lo <= float(r[f"next_{c}"]) <= hi for r in rows) / n for c in ("alpha_p", "alpha_n")
    }
    above = sum(float(r["next_beta2"]) > 1.0 for r in rows) / n
    moves = {c: coefficient_moves(rows, c) for c in COEFFICIENTS}
    in_band = inside["alpha_p"] > 0.5 and inside["alpha_n"] > 0.5
    moved = all(moves[c]["rises"] > 0 and moves[c]["falls"] > 0 for c in ("alpha_p", "alpha_n"))
    out["fig6"] = {
        "alpha_p_in_band_fraction": inside["alpha_p"],
        "alpha_n_in_band_fraction": inside["alpha_n"],
        "beta2_above_1_fraction": above,
        "band": list(band),
        "moves": moves,
        "alphas_in_band_most_of_training": in_band,
        "alphas_oscillate": in_band and moved,
        "beta2_above_1_most_of_training": above > 0.5,
        "pattern_held": in_band and moved and above > 0.5,
    }
    return out


def _atomic_write(path: Path, write) -> None:
    """``write(f)`` into a temporary file beside ``path``, renamed onto it when complete."""
    # The library stands alone, so it carries its own atomic write: a killed run never leaves a
    # truncated CSV under the final name (same folder, so os.replace is atomic).
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=".partial" + path.suffix, dir=path.parent
    )
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class GLFTrajectoryRecorder(keras.callbacks.Callback):
    """Record the per-iteration GLF trajectory (base of both adaptive-rule callbacks).

    Subclasses compute a row per train batch and call :meth:`record`. This class writes
    the rows to ``csv_path`` and TensorBoard, puts the latest values into the Keras logs,
    and saves/restores the coefficients for ``--resume``.

    Args:
        loss: the :class:`~keras_losses.GeneralizedLoss` whose coefficients are adapted.
        csv_path: where to write the trajectory CSV (None: keep rows in memory only).
        tensorboard_dir: folder for ``glf/*`` scalars (None: no TensorBoard).
        state_path: JSON file with the coefficients at each epoch end (None: beside
            ``csv_path`` as ``glf_state.json``, or no resume state without ``csv_path``).
    """

    def __init__(self, loss, csv_path=None, tensorboard_dir=None, state_path=None):
        super().__init__()
        from keras_losses.generalized import GeneralizedLoss

        if not isinstance(loss, GeneralizedLoss):
            raise ValueError(
                f"{type(self).__name__}: `loss` must be a keras_losses.GeneralizedLoss; "
                f"received {type(loss).__name__}"
            )
        self.loss = loss
        self.csv_path = None if csv_path is None else str(csv_path)
        self.tensorboard_dir = None if tensorboard_dir is None else str(tensorboard_dir)
        if state_path is None and csv_path is not None:
            state_path = Path(csv_path).with_name(STATE_JSON)
        self.state_path = None if state_path is None else str(state_path)
        self.rows: list[dict] = []
        self._writer = None
        self._written_tb = 0
        self._epoch = 0
        self._first_epoch = True
        self._iteration = 0
        self._coefficients = None

    # ------------------------------------------------------------------ recording
    def record(self, row: dict, logs: dict | None) -> None:
        """Append one iteration's row and expose its values as ``glf_*`` Keras logs."""
        self._iteration += 1
        row = {"iteration": self._iteration, "epoch": self._epoch + 1, **row}
        self.rows.append(row)
        if logs is not None:
            for key in LOG_KEYS:
                logs[f"glf_{key}"] = float(row[key])

    def on_train_begin(self, logs=None):
        self._first_epoch = True

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if self._first_epoch:
            self._first_epoch = False
            self._restore(epoch)
            # Host-side copies, read once (after BackupAndRestore's on_train_begin), so that a
            # step costs no extra device reads: the rules keep them in step with what they set.
            self._iteration = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
            self._coefficients = self._current()

    def on_epoch_end(self, epoch, logs=None):
        if self.rows and logs is not None:
            last = self.rows[-1]
            for key in LOG_KEYS:
                logs[f"glf_{key}"] = float(last[key])
            for c in COEFFICIENTS:  # the values the next epoch starts with
                logs[f"glf_{c}"] = float(last[f"next_{c}"])
        self._flush(epoch_done=epoch + 1)

    def on_train_end(self, logs=None):
        # A fit that trained no epoch (``--resume`` of a run whose epochs are all done) never
        # reloaded the rows: writing them now would truncate the CSV to its header.
        if not self._first_epoch:
            self._flush(epoch_done=None)
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # ------------------------------------------------------------------ files
    def _flush(self, epoch_done: int | None) -> None:
        if self.csv_path is not None:
            rows = [{k: r.get(k, "") for k in CSV_FIELDS} for r in self.rows]

            def write(f):
                writer = csv.DictWriter(f, fieldnames=list(CSV_FIELDS))
                writer.writeheader()
                writer.writerows(rows)

            _atomic_write(Path(self.csv_path), write)
        if self.state_path is not None and epoch_done is not None:
            state = self._read_state()
            state["epochs"][str(epoch_done)] = {
                "iteration": int(self.rows[-1]["iteration"]) if self.rows else 0,
                **self.loss.coefficients,
            }
            _atomic_write(Path(self.state_path), lambda f: json.dump(state, f, indent=1))
        if self.tensorboard_dir is not None and len(self.rows) > self._written_tb:
            self._write_tensorboard()

    def _write_tensorboard(self) -> None:
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2

        # Raw summary writes with the scalars-plugin metadata: identical on disk to
        # tf.summary.scalar, which needs the tensorboard package installed.
        metadata = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
            data_class=summary_pb2.DATA_CLASS_SCALAR,
        )
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.tensorboard_dir)
        keys = (*COEFFICIENTS, *STATISTICS, "score")
        with self._writer.as_default():
            for row in self.rows[self._written_tb :]:
                step = int(row["iteration"])
                for key in keys:
                    if row.get(key, "") != "":
                        value = tf.constant(float(row[key]), tf.float32)
                        tf.summary.write(f"glf/{key}", value, step=step, metadata=metadata)
        self._writer.flush()
        self._written_tb = len(self.rows)

    def _read_state(self) -> dict:
        if self.state_path is None or not Path(self.state_path).exists():
            return {"epochs": {}}
        with open(self.state_path, encoding="utf-8") as f:
            return json.load(f)

    def _restore(self, start_epoch: int) -> None:
        """On resume (fit starting at ``start_epoch`` > 0), reload coefficients and rows."""
        if start_epoch == 0:
            self.rows = []
            return
        state = self._read_state()["epochs"].get(str(start_epoch))
        if state is None:
            import warnings

            warnings.warn(
                f"{type(self).__name__}: resuming at epoch {start_epoch + 1} but "
                f"{self.state_path} has no GLF coefficients for epoch {start_epoch}; "
                f"continuing with the loss's current coefficients {self.loss.coefficients}",
                stacklevel=2,
            )
        else:
            self.loss.set_coefficients(**{c: state[c] for c in COEFFICIENTS})
        if self.csv_path is not None and Path(self.csv_path).exists():
            self.rows = [
                r for r in _read_rows_as_written(self.csv_path) if r["epoch"] <= start_epoch
            ]
            self._written_tb = len(self.rows)

    def _current(self) -> dict[str, float]:
        """Current coefficients as float32-exact Python floats."""
        return {
            c: float(np.float32(keras.ops.convert_to_numpy(v)))
            for c, v in zip(
                COEFFICIENTS,
                (self.loss.alpha_p_var, self.loss.alpha_n_var, self.loss.beta2_var),
                strict=False,
            )
        }
