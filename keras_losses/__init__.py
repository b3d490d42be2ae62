"""Keras 3 losses for medical imaging, from four studies of loss functions.

Every class is a ``keras.losses.Loss`` written with ``keras.ops`` and registered for
serialization under the package name ``"keras_losses"``: importing this package is all a
``keras.saving.load_model`` call needs.

Segmentation (overlap) losses, all built on one soft TP/FP/FN helper:
    GeneralizedLoss (Seo et al. 2021, the GLF), DiceLoss, EffectivenessLoss, TverskyLoss,
    SquaredDiceLoss (Milletari et al.; Rajput 2021).
Pixel losses: BinaryFocalLoss; ``keras.losses.BinaryCrossentropy`` for BCE.
Combinations: CombinedLoss (e.g. BCE + Dice + Focal).
Metric learning: ContrastiveLoss (Hadsell et al.; Baltatzis et al. 2021).
Loss estimation: MarginRankingLoss, LossEstimatorLoss (Narayanaswamy et al. 2021),
    ClassWeightedCategoricalCrossentropy.
"""

from keras_losses._base import PACKAGE, soft_counts
from keras_losses.adaptive import (
    DeterministicGLFCallback,
    ExploratoryGLFModel,
    prepare_adaptive_glf,
)
from keras_losses.combined import CombinedLoss
from keras_losses.contrastive import ContrastiveLoss
from keras_losses.focal import BinaryFocalLoss
from keras_losses.generalized import DiceLoss, EffectivenessLoss, GeneralizedLoss, TverskyLoss
from keras_losses.ranking import (
    ClassWeightedCategoricalCrossentropy,
    LossEstimatorLoss,
    MarginRankingLoss,
)
from keras_losses.squared_dice import SquaredDiceLoss

__all__ = [
    "PACKAGE",
    "soft_counts",
    "GeneralizedLoss",
    "DiceLoss",
    "EffectivenessLoss",
    "TverskyLoss",
    "SquaredDiceLoss",
    "BinaryFocalLoss",
    "CombinedLoss",
    "ContrastiveLoss",
    "MarginRankingLoss",
    "LossEstimatorLoss",
    "ClassWeightedCategoricalCrossentropy",
    "DeterministicGLFCallback",
    "ExploratoryGLFModel",
    "prepare_adaptive_glf",
]
