"""Early stopping at the validation plateau: the rule every model of the GLF comparison trains by.

Rule (ours; the paper does not say how long it trains): validate every epoch (``--steps-per-epoch``
optimizer steps, at most 50 in the reproduction), keep the weights of the best validation Dice
(``best.keras``), and stop once the best is both ``patience`` validations and ``patience_steps``
optimizer steps old; ``--epochs x --steps-per-epoch`` caps the run (5,000 steps in the
reproduction). A validation counts as better only when it is strictly above the best so far, so a
flat curve does not keep a run alive.

The state (best epoch and value, where and why the run stopped) lives in the run folder twice:
``plateau.json``, rewritten at every validation and read by reports, and the callback state of the
``--resume`` backup (``training/fit.py``), so a resumed run continues with the same counters. A run
whose ``plateau.json`` says it stopped is not trained further on ``--resume``.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras

from core import io

PLATEAU_JSON = "plateau.json"


def plateau_reached(
    epoch: int, best_epoch: int, steps_per_epoch: int, patience: int, patience_steps: int
) -> bool:
    """True once the best validation (1-based ``best_epoch``) is ``patience`` validations and
    ``patience_steps`` steps behind the validation at the end of ``epoch`` (1-based)."""
    behind = epoch - best_epoch
    return behind >= patience and behind * steps_per_epoch >= patience_steps


class PlateauStop(keras.callbacks.Callback):
    """Stop training when the validation Dice has not improved for ``patience`` validations
    and ``patience_steps`` steps; record where in ``<run>/plateau.json``.

    Args:
        run_dir: the run folder (``plateau.json`` goes there; None: keep the state in memory).
        steps_per_epoch: optimizer steps between two validations.
        patience: validations without improvement before stopping (>= 1).
        patience_steps: optimizer steps without improvement before stopping.
        max_epochs: the cap (epochs of the run), recorded in the state.
        monitor: the validation metric (maximised). Default ``val_dice``.
    """

    def __init__(
        self,
        run_dir,
        steps_per_epoch: int,
        patience: int,
        patience_steps: int,
        max_epochs: int,
        monitor: str = "val_dice",
    ):
        super().__init__()
        if steps_per_epoch < 1 or patience < 1 or patience_steps < 0:
            raise ValueError(
                "PlateauStop: steps_per_epoch and patience must be >= 1 and patience_steps >= 0; "
                f"received {steps_per_epoch}, {patience}, {patience_steps}"
            )
        self.path = None if run_dir is None else Path(run_dir) / PLATEAU_JSON
        self.steps_per_epoch, self.patience, self.patience_steps = (
            steps_per_epoch,
            patience,
            patience_steps,
        )
        self.max_epochs, self.monitor = max_epochs, monitor
        self.state = self._empty()

    def _empty(self) -> dict:
        return {
            "monitor": self.monitor,
            "steps_per_epoch": self.steps_per_epoch,
            "patience": self.patience,
            "patience_steps": self.patience_steps,
            "max_steps": self.max_epochs * self.steps_per_epoch,
            "best_epoch": None,
            "best_step": None,
            "best_value": None,
            "last_epoch": 0,
            "last_step": 0,
            "stopped": None,  # "plateau" or "max_steps" once the run has ended
        }

    # ------------------------------------------------------------------ resume hooks
    def get_state(self) -> dict:
        return dict(self.state)

    def set_state(self, state: dict) -> None:
        self.state = {**self._empty(), **state}

    # ------------------------------------------------------------------ rule
    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        value = None if value is None else float(value)
        s = self.state
        s["last_epoch"], s["last_step"] = epoch + 1, (epoch + 1) * self.steps_per_epoch
        if (
            value is not None
            and math.isfinite(value)
            and (s["best_value"] is None or value > s["best_value"])
        ):
            s["best_epoch"], s["best_step"], s["best_value"] = epoch + 1, s["last_step"], value
        best_epoch = s["best_epoch"] if s["best_epoch"] is not None else 0
        if plateau_reached(
            epoch + 1, best_epoch, self.steps_per_epoch, self.patience, self.patience_steps
        ):
            s["stopped"] = "plateau"
            self.model.stop_training = True
        elif epoch + 1 >= self.max_epochs:
            s["stopped"] = "max_steps"
        self._write()

    def _write(self) -> None:
        if self.path is not None:
            io.write_json(self.path, self.state)


def read_plateau(run_dir) -> dict | None:
    """The ``plateau.json`` of a run folder, or None when the run had no early stopping."""
    path = Path(run_dir) / PLATEAU_JSON
    return io.read_json(path) if path.is_file() else None


def _history(run_dir: Path) -> list[dict]:
    import csv

    path = Path(run_dir) / "history.csv"
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def run_stopping(run_dir: Path) -> dict:
    """Where a run stopped and where its best validation Dice was, in optimizer steps, from its
    ``plateau.json`` (early stopping) or, without one, its ``history.csv``."""
    from core import io

    state = read_plateau(run_dir)
    if state is not None:
        return {
            "stopped": state["stopped"],
            "stopped_step": state["last_step"],
            "best_step": state["best_step"],
            "best_val_dice": state["best_value"],
            "max_steps": state["max_steps"],
        }
    spe = int(io.read_json(Path(run_dir) / "config.json").get("steps_per_epoch") or 0)
    rows = [r for r in _history(run_dir) if r.get("val_dice") not in (None, "")]
    if not rows or not spe:
        return {"stopped": None, "stopped_step": None, "best_step": None, "best_val_dice": None}
    best = max(rows, key=lambda r: float(r["val_dice"]))  # the first of equal values
    return {
        "stopped": "epochs",
        "stopped_step": int(rows[-1]["epoch"]) * spe,
        "best_step": int(best["epoch"]) * spe,
        "best_val_dice": float(best["val_dice"]),
    }


def plot_validation_curves(run_dirs: dict, out_png: Path) -> Path | None:
    """Validation Dice against optimizer step of each run (``{label: run folder}``), one panel per
    model; the best validation of each run marked with a dot, where it stopped with a cross."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from core import io

    curves = {}
    for label, path in run_dirs.items():
        spe = int(io.read_json(Path(path) / "config.json").get("steps_per_epoch") or 0)
        rows = [r for r in _history(path) if r.get("val_dice") not in (None, "")]
        if rows and spe:
            steps = [int(r["epoch"]) * spe for r in rows]
            curves[label] = (steps, [100 * float(r["val_dice"]) for r in rows])
    if not curves:
        return None
    panels = list(dict.fromkeys(label.split(", seed")[0] for label in curves))
    fig, axes = plt.subplots(
        1, len(panels), figsize=(3.6 * len(panels), 3.2), sharey=True, squeeze=False
    )
    for ax, model in zip(axes[0], panels, strict=True):
        for label, (steps, dice) in curves.items():
            if label.split(", seed")[0] != model:
                continue
            (line,) = ax.plot(steps, dice, lw=1, label=label.split(", ")[-1])
            k = max(range(len(dice)), key=lambda i: dice[i])
            ax.plot(steps[k], dice[k], "o", color=line.get_color(), ms=4)
            ax.plot(steps[-1], dice[-1], "x", color=line.get_color(), ms=5)
        ax.set_title(model, fontsize=9)
        ax.set_xlabel("optimizer step")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("validation Dice (%)")
    fig.suptitle("Validation Dice (dot: best, kept for the test; cross: where the run stopped)", fontsize=9)
    return io.save_figure(fig, out_png)
