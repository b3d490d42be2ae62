"""Every loss the benchmark trains, one row each: how it is built for a task, and its group.

"Every loss" is every segmentation loss class that ``keras_losses`` exports, at its paper's or
the library's defaults; :data:`NOT_SEGMENTATION` lists the exported classes that are not
segmentation losses, with the reason, and a test checks that the two lists together cover
``keras_losses.__all__``. Cross-entropy (Keras's own) is the distribution-loss baseline.
The adaptive GLF rules (Seo et al. 2021) are binary and enter the lung task only.

Groups (Ma et al. 2021, Table 1): distribution (CE and its variants), region (overlap),
boundary (distance based), compound (a sum of two groups).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# Exported classes that are not segmentation losses (never trained here), with the reason.
NOT_SEGMENTATION = {
    "ContrastiveLoss": "metric learning on pairs of embeddings (Baltatzis et al.)",
    "MarginRankingLoss": "loss-estimator ranking of classification losses (Narayanaswamy et al.)",
    "LossEstimatorLoss": "loss-estimator head of a classifier (Narayanaswamy et al.)",
    "ClassWeightedCategoricalCrossentropy": "classification CE with class weights",
    "CombinedLoss": "a container: the compounds below are built from it",
    "ExploratoryGLFModel": "a Model (the exploratory GLF train step), entered as G(E)",
    "DeterministicGLFCallback": "a Callback (the deterministic GLF rule), entered as G(D)",
}


@dataclass(frozen=True)
class LossSpec:
    """One benchmark loss.

    Args:
        name: the row name in results.json and the report.
        group: distribution, region, boundary or compound.
        build: ``build(num_classes) -> keras loss``; ``num_classes`` is 1 for a binary
            (sigmoid) task and C for a softmax task.
        library_class: the exported ``keras_losses`` class it exercises (None: Keras's CE).
        tasks: the tasks it enters.
        distance_maps: y_true carries the signed distance maps (attach_distance_maps).
        adaptive: a GLF rule of ``prepare_adaptive_glf`` ("det", "exp"), else None.
        schedule: a callback factory ``schedule(loss) -> Callback`` run during training.
        settings: the settings used and where they come from.
    """

    name: str
    group: str
    build: Callable
    library_class: str | None
    tasks: tuple[str, ...] = ("hippocampus", "lung")
    distance_maps: bool = False
    adaptive: str | None = None
    schedule: Callable | None = None
    settings: str = "library defaults"


def _ce(num_classes):
    import keras

    if num_classes == 1:
        return keras.losses.BinaryCrossentropy(name="ce")
    return keras.losses.CategoricalCrossentropy(name="ce")


def _kl(name):
    def build(num_classes, **kwargs):
        import keras_losses

        return getattr(keras_losses, name)(**kwargs)

    return build


def _glf(num_classes):
    import keras_losses

    return (
        keras_losses.GeneralizedLoss()
    )  # starts at the Dice values (1, 1, 1), Seo et al. Sec. II-B


BINARY_ONLY = ("lung",)

SPECS: tuple[LossSpec, ...] = (
    LossSpec("CE", "distribution", _ce, None, settings="Keras cross-entropy, the baseline"),
    LossSpec("Dice", "region", _kl("DiceLoss"), "DiceLoss"),
    LossSpec("SquaredDice", "region", _kl("SquaredDiceLoss"), "SquaredDiceLoss"),
    LossSpec(
        "Effectiveness",
        "region",
        _kl("EffectivenessLoss"),
        "EffectivenessLoss",
        settings="library default beta^2",
    ),
    LossSpec(
        "Tversky",
        "region",
        _kl("TverskyLoss"),
        "TverskyLoss",
        settings="library default alpha, beta",
    ),
    LossSpec(
        "Focal",
        "distribution",
        _kl("BinaryFocalLoss"),
        "BinaryFocalLoss",
        tasks=BINARY_ONLY,
        settings="alpha 0.25, gamma 2 (Lin et al. 2017)",
    ),
    LossSpec(
        "G(D)",
        "region",
        _glf,
        "GeneralizedLoss",
        tasks=BINARY_ONLY,
        adaptive="det",
        settings="deterministic rule from (1, 1, 1) (Seo et al. 2021, Fig. 2b)",
    ),
    LossSpec(
        "G(E)",
        "region",
        _glf,
        "GeneralizedLoss",
        tasks=BINARY_ONLY,
        adaptive="exp",
        settings="exploratory rule, exact search, from (1, 1, 1) (Seo et al. 2021, Fig. 2a)",
    ),
)


def specs_for(task: str, names: list[str] | None = None) -> list[LossSpec]:
    """The losses that enter ``task`` (all, or those named)."""
    known = {s.name: s for s in SPECS}
    if names:
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"--losses: unknown {unknown}; the benchmark has {', '.join(known)}")
        chosen = [known[n] for n in names]
    else:
        chosen = list(SPECS)
    return [s for s in chosen if task in s.tasks]


def run_name(name: str) -> str:
    """A folder name for a loss name: G(D) -> G-D."""
    return name.replace("(", "-").replace(")", "").replace("+", "_").replace(" ", "")
