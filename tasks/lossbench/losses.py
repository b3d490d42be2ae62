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
        schedule: a callback factory ``schedule(loss, samples_per_epoch, train_samples)``.
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
MULTICLASS_ONLY = ("hippocampus",)


def _rebalancing(loss, samples_per_epoch: int, train_samples: int):
    """Kervadec et al.'s schedule, alpha -0.01 per pass over the training data, in the
    benchmark's epochs of ``samples_per_epoch`` samples."""
    import keras_losses

    step = 0.01 * samples_per_epoch / max(train_samples, 1)
    return keras_losses.BoundaryRebalancing(loss, step=min(step, 1.0))


SPECS: tuple[LossSpec, ...] = (
    # distribution losses
    LossSpec("CE", "distribution", _ce, None, settings="Keras cross-entropy, the baseline"),
    LossSpec(
        "TopK",
        "distribution",
        _kl("TopKCrossEntropyLoss"),
        "TopKCrossEntropyLoss",
        settings="k = 10 % (Ma et al. 2021, TopK10)",
    ),
    LossSpec(
        "Focal",
        "distribution",
        _kl("BinaryFocalLoss"),
        "BinaryFocalLoss",
        tasks=BINARY_ONLY,
        settings="alpha 0.25, gamma 2 (Lin et al. 2017); binary",
    ),
    # region losses
    LossSpec("Dice", "region", _kl("DiceLoss"), "DiceLoss"),
    LossSpec("SquaredDice", "region", _kl("SquaredDiceLoss"), "SquaredDiceLoss"),
    LossSpec("GeneralizedDice", "region", _kl("GeneralizedDiceLoss"), "GeneralizedDiceLoss"),
    LossSpec("Jaccard", "region", _kl("JaccardLoss"), "JaccardLoss"),
    LossSpec(
        "Effectiveness",
        "region",
        lambda c: _kl("EffectivenessLoss")(c, beta2=2.0),
        "EffectivenessLoss",
        settings="beta^2 = 2, the value of the glf-lung study (docs/lung.md)",
    ),
    LossSpec(
        "Tversky",
        "region",
        lambda c: _kl("TverskyLoss")(c, alpha=0.3, beta=0.7),
        "TverskyLoss",
        settings="alpha 0.3, beta 0.7 (Salehi et al. 2017; also the glf-lung study's choice)",
    ),
    LossSpec("FocalTversky", "region", _kl("FocalTverskyLoss"), "FocalTverskyLoss"),
    LossSpec(
        "SensSpec",
        "region",
        _kl("SensitivitySpecificityLoss"),
        "SensitivitySpecificityLoss",
        settings="r = 0.05",
    ),
    LossSpec(
        "Asym",
        "region",
        _kl("AsymmetricSimilarityLoss"),
        "AsymmetricSimilarityLoss",
        settings="beta = 1.5 (Hashemi et al. 2018)",
    ),
    LossSpec("LovaszSoftmax", "region", _kl("LovaszSoftmaxLoss"), "LovaszSoftmaxLoss"),
    LossSpec(
        "LovaszHinge",
        "region",
        _kl("LovaszHingeLoss"),
        "LovaszHingeLoss",
        tasks=BINARY_ONLY,
        settings="per image, logits recovered from the sigmoid output; binary",
    ),
    LossSpec(
        "BCE+pos_weight",
        "distribution",
        _kl("BinaryCrossentropyLoss"),
        "BinaryCrossentropyLoss",
        tasks=BINARY_ONLY,
        settings="library default pos_weight 1 (equals Keras BCE)",
    ),
    LossSpec(
        "WeightedCE",
        "distribution",
        _kl("CategoricalCrossentropyLoss"),
        "CategoricalCrossentropyLoss",
        tasks=MULTICLASS_ONLY,
        settings="no class weights (equals Keras CE)",
    ),
    LossSpec(
        "CategoricalFocal",
        "distribution",
        _kl("CategoricalFocalLoss"),
        "CategoricalFocalLoss",
        tasks=MULTICLASS_ONLY,
        settings="alpha 0.25, gamma 2 (Lin et al. 2017, as Keras)",
    ),
    LossSpec("Combo", "compound", _kl("ComboLoss"), "ComboLoss", settings="alpha 0.5, beta 0.5"),
    LossSpec(
        "ExpLog",
        "compound",
        _kl("ExpLogLoss"),
        "ExpLogLoss",
        settings="w 0.8/0.2, gamma 0.3 (Wong et al. 2018)",
    ),
    LossSpec("SymmetricFocal", "distribution", _kl("SymmetricFocalLoss"), "SymmetricFocalLoss"),
    LossSpec("AsymmetricFocal", "distribution", _kl("AsymmetricFocalLoss"), "AsymmetricFocalLoss"),
    LossSpec(
        "SymmetricFocalTversky",
        "region",
        _kl("SymmetricFocalTverskyLoss"),
        "SymmetricFocalTverskyLoss",
    ),
    LossSpec(
        "AsymmetricFocalTversky",
        "region",
        _kl("AsymmetricFocalTverskyLoss"),
        "AsymmetricFocalTverskyLoss",
    ),
    LossSpec(
        "UnifiedFocal",
        "compound",
        _kl("UnifiedFocalLoss"),
        "UnifiedFocalLoss",
        settings="asymmetric, lambda 0.5, delta 0.6, gamma 0.5 (Yeung et al. 2022)",
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
    # boundary losses
    LossSpec("Boundary", "boundary", _kl("BoundaryLoss"), "BoundaryLoss", distance_maps=True),
    LossSpec(
        "HausdorffDT",
        "boundary",
        _kl("OneSidedHausdorffDTLoss"),
        "OneSidedHausdorffDTLoss",
        distance_maps=True,
        settings="alpha = 2 (Karimi & Salcudean 2019); one-sided",
    ),
    # compound losses
    LossSpec("Dice+CE", "compound", _kl("DiceCELoss"), "DiceCELoss"),
    LossSpec("Dice+Focal", "compound", _kl("DiceFocalLoss"), "DiceFocalLoss"),
    LossSpec("Dice+TopK", "compound", _kl("DiceTopKLoss"), "DiceTopKLoss", settings="k = 10 %"),
    LossSpec(
        "Dice+Boundary",
        "compound",
        _kl("DiceBoundaryLoss"),
        "DiceBoundaryLoss",
        distance_maps=True,
        schedule=_rebalancing,
        settings="alpha from 1, -0.01 per pass over the training data, floor 0.01 (Kervadec et al.)",
    ),
)


def available(spec: LossSpec) -> bool:
    """Whether the installed ``keras_losses`` exports the spec's class."""
    import keras_losses

    return spec.library_class is None or hasattr(keras_losses, spec.library_class)


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
