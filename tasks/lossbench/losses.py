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
    "CombinedLoss": "a container of losses, not a loss of its own",
    "SegmentationLoss": "the base class of the segmentation losses",
    "OverlapLoss": "the base class of the overlap losses",
}


@dataclass(frozen=True)
class LossSpec:
    """One benchmark loss.

    Args:
        name: the row name in results.json and the report.
        group: distribution, region, boundary or compound.
        build: ``build(num_classes) -> keras loss``; ``num_classes`` is 1 for a binary
            (sigmoid) task and C for a softmax task.
        library_class: the exported ``keras_losses`` classes it exercises (a binary and a
            multi-class class where the library has one of each).
        tasks: the tasks it enters.
        distance_maps: y_true carries the signed distance maps (attach_distance_maps).
        adaptive: a GLF rule of ``prepare_adaptive_glf`` ("det", "exp"), else None.
        schedule: a callback factory ``schedule(loss, samples_per_epoch, train_samples)``.
        settings: the settings used and where they come from.
    """

    name: str
    group: str
    build: Callable
    library_class: tuple[str, ...]
    tasks: tuple[str, ...] = ("hippocampus", "lung")
    distance_maps: bool = False
    adaptive: str | None = None
    schedule: Callable | None = None
    settings: str = "library defaults"


def _by_task(binary: str, multiclass: str):
    """The binary class for a sigmoid output, the multi-class one for a softmax output."""

    def build(num_classes):
        import keras_losses

        return getattr(keras_losses, binary if num_classes == 1 else multiclass)()

    return build


def _kl(name, **kwargs):
    def build(num_classes):
        import keras_losses

        return getattr(keras_losses, name)(**kwargs)

    return build


def _glf(num_classes):
    import keras_losses

    return (
        keras_losses.GeneralizedLoss()
    )  # starts at the Dice values (1, 1, 1), Seo et al. Sec. II-B


BINARY_ONLY = ("lung",)


def _rebalancing(loss, samples_per_epoch: int, train_samples: int):
    """Kervadec et al.'s schedule, alpha -0.01 per pass over the training data, in the
    benchmark's epochs of ``samples_per_epoch`` samples."""
    import keras_losses

    step = 0.01 * samples_per_epoch / max(train_samples, 1)
    return keras_losses.BoundaryRebalancing(loss, step=min(step, 1.0))


CE = ("BinaryCrossentropyLoss", "CategoricalCrossentropyLoss")
FOCAL = ("BinaryFocalLoss", "CategoricalFocalLoss")


def _spec(name, group, cls, settings="library defaults", **kw):
    """A row whose builder calls one ``keras_losses`` class with ``kw['args']``."""
    args = kw.pop("args", {})
    return LossSpec(name, group, _kl(cls, **args), (cls,), settings=settings, **kw)


SPECS: tuple[LossSpec, ...] = (
    # distribution losses
    LossSpec("CE", "distribution", _by_task(*CE), CE, settings="binary / categorical CE"),
    _spec("TopK", "distribution", "TopKCrossEntropyLoss", "k = 10 % (Ma et al. 2021, TopK10)"),
    LossSpec(
        "Focal",
        "distribution",
        _by_task(*FOCAL),
        FOCAL,
        settings="alpha 0.25, gamma 2 (Lin et al. 2017)",
    ),
    _spec("SymmetricFocal", "distribution", "SymmetricFocalLoss"),
    _spec("AsymmetricFocal", "distribution", "AsymmetricFocalLoss"),
    # region losses
    _spec("Dice", "region", "DiceLoss"),
    _spec("SquaredDice", "region", "SquaredDiceLoss"),
    _spec("GeneralizedDice", "region", "GeneralizedDiceLoss"),
    _spec("Jaccard", "region", "JaccardLoss"),
    _spec(
        "Effectiveness",
        "region",
        "EffectivenessLoss",
        "beta^2 = 2, the value of the glf-lung study (docs/lung.md)",
        args={"beta2": 2.0},
    ),
    _spec(
        "Tversky",
        "region",
        "TverskyLoss",
        "alpha 0.3, beta 0.7 (Salehi et al. 2017; also the glf-lung study's choice)",
        args={"alpha": 0.3, "beta": 0.7},
    ),
    _spec(
        "FocalTversky",
        "region",
        "FocalTverskyLoss",
        "alpha 0.3, beta 0.7, gamma 0.75 (Abraham & Khan 2019)",
    ),
    _spec("SymmetricFocalTversky", "region", "SymmetricFocalTverskyLoss"),
    _spec("AsymmetricFocalTversky", "region", "AsymmetricFocalTverskyLoss"),
    _spec("SensSpec", "region", "SensitivitySpecificityLoss", "r = 0.05"),
    _spec("Asym", "region", "AsymmetricSimilarityLoss", "beta = 1.5 (Hashemi et al. 2018)"),
    _spec("LovaszSoftmax", "region", "LovaszSoftmaxLoss", "present classes, pooled over the batch"),
    _spec(
        "LovaszHinge",
        "region",
        "LovaszHingeLoss",
        "per image, logits recovered from the sigmoid output; binary",
        tasks=BINARY_ONLY,
    ),
    LossSpec(
        "G(D)",
        "region",
        _glf,
        ("GeneralizedLoss", "DeterministicGLFCallback"),
        tasks=BINARY_ONLY,
        adaptive="det",
        settings="deterministic rule from (1, 1, 1) (Seo et al. 2021, Fig. 2b)",
    ),
    LossSpec(
        "G(E)",
        "region",
        _glf,
        ("GeneralizedLoss", "ExploratoryGLFModel"),
        tasks=BINARY_ONLY,
        adaptive="exp",
        settings="exploratory rule, exact search, from (1, 1, 1) (Seo et al. 2021, Fig. 2a)",
    ),
    # boundary losses
    _spec("Boundary", "boundary", "BoundaryLoss", "foreground classes", distance_maps=True),
    _spec(
        "HausdorffDT",
        "boundary",
        "OneSidedHausdorffDTLoss",
        "alpha = 2 (Karimi & Salcudean 2019); one-sided",
        distance_maps=True,
    ),
    # compound losses
    _spec("Dice+CE", "compound", "DiceCELoss"),
    _spec("Dice+Focal", "compound", "DiceFocalLoss"),
    _spec("Dice+TopK", "compound", "DiceTopKLoss", "k = 10 %"),
    LossSpec(
        "Dice+Boundary",
        "compound",
        _kl("DiceBoundaryLoss"),
        ("DiceBoundaryLoss", "BoundaryRebalancing"),
        distance_maps=True,
        schedule=_rebalancing,
        settings="alpha from 1, -0.01 per pass over the training data, floor 0.01 (Kervadec et al.)",
    ),
    _spec("Combo", "compound", "ComboLoss"),
    _spec("ExpLog", "compound", "ExpLogLoss"),
    _spec("UnifiedFocal", "compound", "UnifiedFocalLoss"),
)


def available(spec: LossSpec) -> bool:
    """Whether the installed ``keras_losses`` exports the spec's class."""
    import keras_losses

    return all(hasattr(keras_losses, c) for c in spec.library_class)


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
    return [s for s in chosen if task in s.tasks and available(s)]


def run_name(name: str) -> str:
    """A folder name for a loss name: G(D) -> G-D."""
    return name.replace("(", "-").replace(")", "").replace("+", "_").replace(" ", "")
