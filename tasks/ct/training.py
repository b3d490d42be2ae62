"""Build the mU-Net, the loss and the metrics of a lung/liver run, and train it."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from tasks.ct.config import ADAPTIVE, CTConfig, data_config, resolve_config
from tasks.ct.evaluation import evaluate_models
from tasks.ct.plateau import read_plateau


def build_model(cfg: CTConfig):
    from architectures.munet import build_munet
    from architectures.unet import build_unet

    common = {
        "depth": cfg.depth,
        "base_filters": cfg.base_filters,
        "batch_norm": True,
        "bn_momentum": cfg.bn_momentum,
        "dropout": cfg.dropout,
        "kernel_stddev": cfg.kernel_stddev,
        "bias_value": cfg.bias_value,
    }
    shape = (cfg.image_size, cfg.image_size, 1)
    if cfg.arch == "munet":
        return build_munet(shape, output=cfg.output_layer, **common)
    return build_unet(shape, **common)


def build_loss(cfg: CTConfig):
    import keras_losses as kl

    if cfg.loss == "dice":
        return kl.DiceLoss()
    if cfg.loss == "effectiveness":
        return kl.EffectivenessLoss(beta2=cfg.beta2)
    if cfg.loss == "tversky":
        return kl.TverskyLoss(alpha=cfg.tversky_alpha, beta=cfg.tversky_beta)
    return kl.GeneralizedLoss(alpha_p=cfg.alpha_p, alpha_n=cfg.alpha_n, beta2=cfg.beta2)


def build_metrics():
    """Pixel precision and recall at threshold 0.5 (built-in Keras metrics, so a saved model
    reloads without extra registrations); the validation Dice is derived from them."""
    import keras

    return [
        keras.metrics.Precision(thresholds=0.5, name="precision"),
        keras.metrics.Recall(thresholds=0.5, name="recall"),
    ]


def _dice_callback():
    import keras

    class DiceFromPrecisionRecall(keras.callbacks.Callback):
        """Adds ``dice`` and ``val_dice`` = 2PR / (P + R) (pixel Dice pooled over the epoch's
        slices, at threshold 0.5) to the epoch logs, before the checkpoint reads them."""

        def on_epoch_end(self, epoch, logs=None):
            if logs is None:
                return
            for prefix in ("", "val_"):
                p, r = logs.get(prefix + "precision"), logs.get(prefix + "recall")
                if p is not None and r is not None:
                    p, r = float(p), float(r)
                    logs[prefix + "dice"] = 2 * p * r / (p + r) if p + r > 0 else 0.0

    return DiceFromPrecisionRecall()


def tensorboard_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def _epoch_scalars_callback(log_dir):
    """Epoch logs as TensorBoard scalars without the ``tensorboard`` package.

    TensorFlow 2.21 no longer installs ``tensorboard``, and Keras's TensorBoard callback needs
    it for ``tf.summary.scalar``; raw summary writes with the scalars-plugin metadata give the
    same event files (``tensorboard --logdir`` reads them once it is installed to view them).
    """
    import keras

    class EpochScalars(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.writer = None

        def on_epoch_end(self, epoch, logs=None):
            import tensorflow as tf
            from tensorflow.core.framework import summary_pb2

            metadata = summary_pb2.SummaryMetadata(
                plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
                data_class=summary_pb2.DATA_CLASS_SCALAR,
            )
            if self.writer is None:
                self.writer = tf.summary.create_file_writer(str(log_dir))
            with self.writer.as_default():
                for key, value in (logs or {}).items():
                    try:
                        value = float(value)
                    except (TypeError, ValueError):
                        continue
                    tf.summary.write(
                        f"epoch_{key}", tf.constant(value), step=epoch + 1, metadata=metadata
                    )
            self.writer.flush()

        def on_train_end(self, logs=None):
            if self.writer is not None:
                self.writer.close()

    return EpochScalars()


def compile_model(model, cfg: CTConfig, run_dir=None):
    """Compile ``model`` for ``cfg.loss``; returns ``(model, callbacks)``.

    Adaptive losses go through :func:`keras_losses.adaptive.prepare_adaptive_glf`, which
    may wrap the model (the exploratory rule works at the train-step level).
    """
    import keras

    loss = build_loss(cfg)
    optimizer = keras.optimizers.Adam(learning_rate=cfg.lr)
    if cfg.loss in ADAPTIVE:
        from keras_losses.adaptive import prepare_adaptive_glf

        rule = ADAPTIVE[cfg.loss] if cfg.loss == "glf-det" else cfg.exp_mode
        lo, hi = cfg.glf_bounds
        if rule == "det":
            options = {
                "guard_mode": cfg.glf_guard,
                "statistic": cfg.glf_statistic,
                "counts": cfg.glf_counts,
                "beta2_statistic": cfg.glf_beta2_statistic,
                "guard_scale": cfg.glf_guard_scale,
            }
            if lo > 0 or math.isfinite(hi):
                pair = [lo if lo > 0 else None, hi if math.isfinite(hi) else None]
                options["bounds"] = {name: pair for name in ("alpha_p", "alpha_n", "beta2")}
        else:
            options = {"bounds": (max(lo, 1e-6), min(hi, 1e6))}
            if rule == "exp-hybrid":
                options["top_k"] = cfg.exp_top_k
        model, callbacks = prepare_adaptive_glf(
            model,
            loss,
            rule,
            optimizer,
            metrics=build_metrics(),
            run_dir=run_dir,
            rule_options=options,
        )
        return model, list(callbacks)
    model.compile(optimizer=optimizer, loss=loss, metrics=build_metrics())
    return model, []


# ------------------------------------------------------------------------------ train
def train(args: argparse.Namespace) -> Path:
    """Train one model; returns the run directory."""
    from tasks.common import default_out

    cfg = resolve_config(args, args.task)
    if getattr(args, "check_data", False):
        return _check_data(cfg)
    out = Path(args.out or default_out(cfg.task, cfg.loss))
    return train_config(
        cfg, out, resume=args.resume, overwrite=args.overwrite, strategy=args.strategy
    )


def _check_data(cfg: CTConfig):
    from data.ct import check_ct_data

    problems = check_ct_data(data_config(cfg))
    if problems:
        print(f"{len(problems)} problem(s) in the {cfg.task} data:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        raise SystemExit(1)
    print(f"The {cfg.task} data at {cfg.data_dir or 'the built-in phantom'} passed every check.")
    return None


def train_config(
    cfg: CTConfig, out, *, resume=False, overwrite=False, strategy="auto", verbose="auto"
) -> Path:
    """Train with a resolved config into run directory ``out``; returns its path."""
    import keras

    from data.ct import prepare_ct_data
    from keras_losses.adaptive.trajectory import summarize_trajectory
    from tasks.common import seed_everything
    from training.fit import fit_model
    from training.rundir import RunDir
    from training.strategy import is_chief, make_strategy

    strategy_obj = make_strategy(strategy)
    run_dir = RunDir(out, resume=resume, overwrite=overwrite, chief=is_chief(strategy_obj))
    cfg = run_dir.resume_config(cfg)  # --resume: the saved settings; a changed flag is an error
    run_dir.write_config(cfg)
    seed_everything(cfg.seed)
    # Writes split.json into the run directory (and reuses it when resuming).
    data = prepare_ct_data(data_config(cfg), run_dir=run_dir.path if run_dir.chief else None)
    train_ds = data.train(cfg.batch_size)
    if cfg.steps_per_epoch:
        train_ds = train_ds.repeat()  # fixed steps per epoch over a reshuffled, endless stream

    with strategy_obj.scope():
        model = build_model(cfg)
        model, callbacks = compile_model(model, cfg, run_dir=run_dir)
    print(
        f"{cfg.arch} with {model.count_params():,} parameters; loss {cfg.loss}; "
        f"{cfg.epochs} epochs of {cfg.steps_per_epoch or 'all'} steps, batch {cfg.batch_size}, "
        f"{cfg.image_size}x{cfg.image_size}",
        flush=True,
    )
    extra = [_dice_callback()]
    if cfg.patience:
        from tasks.ct.plateau import PlateauStop

        # After the Dice callback, which puts val_dice into the logs it reads.
        extra.append(
            PlateauStop(
                run_dir.path if run_dir.chief else None,
                cfg.steps_per_epoch,
                cfg.patience,
                cfg.patience_steps,
                cfg.epochs,
            )
        )
    if not tensorboard_installed() and run_dir.chief:
        extra.append(_epoch_scalars_callback(run_dir / "tensorboard" / "epochs"))
    start = time.perf_counter()
    stopped = run_dir.resuming and (read_plateau(run_dir.path) or {}).get("stopped")
    if stopped:
        print(f"{run_dir.path} already stopped ({stopped}); evaluating its best model", flush=True)
    else:
        fit_model(
            model,
            train_ds,
            data.val(cfg.batch_size),
            run_dir=run_dir,
            epochs=cfg.epochs,
            monitor="val_dice",
            mode="max",
            callbacks=[*callbacks, *extra],
            steps_per_epoch=cfg.steps_per_epoch or None,
            tensorboard=tensorboard_installed(),
            verbose=verbose,
        )
    seconds = time.perf_counter() - start
    if not run_dir.chief:
        return run_dir.path
    trajectory = run_dir / "glf_trajectory.csv"
    glf = None
    if trajectory.exists():
        plot_trajectory_figures({cfg.loss: trajectory}, run_dir.path)
        glf = summarize_trajectory(trajectory)
    best = (
        keras.saving.load_model(run_dir / "best.keras", compile=False)  # inference only
        if (run_dir / "best.keras").exists()
        else model
    )
    result = evaluate_models({cfg.loss: best}, cfg, run_dir.path / "eval", data=data)
    summary = result["models"][cfg.loss]
    run_dir.mark_complete(train_seconds=round(seconds, 1), test=summary, **({"glf": glf} if glf else {}))
    ts, tf = summary["tumour_slices"], summary["tumour_free_slices"]
    print(
        f"Run {run_dir.path} complete in {seconds:.0f} s. Test: tumour slices (n={ts['n']}) "
        f"precision {_fmt(ts['precision'])}, recall {_fmt(ts['recall'])}, Dice {_fmt(ts['dice'])}; "
        f"tumour-free Dice (n={tf['n']}) {_fmt(tf['dice'])}. Figures in {run_dir.path / 'eval'}",
        flush=True,
    )
    if glf:
        print(trajectory_line(glf), flush=True)
    return run_dir.path


def trajectory_line(glf: dict) -> str:
    """One line on what the adaptive rule did, from :func:`summarize_trajectory`: the final
    coefficients, the share of steps each sat at the numeric floor/ceiling, and Fig. 6's
    pattern ("alpha_P and alpha_N oscillate around 1 while ... beta^2 remains larger than 1")."""
    from keras_losses.adaptive.trajectory import LIMITS

    names = {"alpha_p": "alpha_P", "alpha_n": "alpha_N", "beta2": "beta^2"}
    final = ", ".join(f"{names[k]} {v:.3g}" for k, v in glf["final"].items())
    bound = ", ".join(f"{names[k]} {100 * v['floor_or_ceiling']:.1f} %" for k, v in glf["at_bound_fraction"].items())
    fig6 = glf["fig6"]
    held = fig6.get("pattern_held", False)
    line = (
        f"GLF coefficients after {glf['steps']} steps: {final}; steps at the floor/ceiling "
        f"{LIMITS[0]:g}/{LIMITS[1]:g}: {bound}; Fig. 6's pattern (alphas in [0.5, 2] for most steps, each "
        f"rising and falling at least once; beta^2 > 1 for most steps): {'yes' if held else 'no'}."
    )
    if glf["max_at_bound_fraction"] > 0.2:
        line += " A coefficient sat at a limit for more than 20 % of the steps: see docs/lung.md."
    return line


def _fmt(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def plot_trajectory_figures(csvs: dict, out_dir) -> list[Path]:
    """Paper Fig. 6 and 7 from adaptive runs' trajectory CSVs."""
    from keras_losses.adaptive import plot_coefficients, plot_tversky_trajectory

    out_dir = Path(out_dir)
    if not csvs:
        return []
    paths = [out_dir / "glf_coefficients.png", out_dir / "glf_tversky_trajectory.png"]
    plot_coefficients({k: str(v) for k, v in csvs.items()}, paths[0])
    plot_tversky_trajectory({k: str(v) for k, v in csvs.items()}, paths[1])
    return paths
