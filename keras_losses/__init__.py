"""Keras 3 losses for medical imaging, from four studies of loss functions.

Every class is a ``keras.losses.Loss`` written with ``keras.ops`` and registered for
serialization under the package name ``"keras_losses"``: importing this package is all a
``keras.saving.load_model`` call needs.

Every segmentation loss reads one input convention (``keras_losses._base``): y_pred of shape
(batch, *spatial, C), probabilities or logits (``from_logits``), one-hot or integer labels with
an ``ignore_class``, pixel masks through ``sample_weight``, per-class losses averaged with
optional ``class_weights``.

Overlap losses, all built on one soft TP/FP/FN helper (``soft_counts``):
    GeneralizedLoss (the GLF of Seo et al. 2021), DiceLoss, EffectivenessLoss, TverskyLoss,
    FocalTverskyLoss (Abraham & Khan 2019), JaccardLoss, SquaredDiceLoss (Milletari et al.;
    Rajput 2021), GeneralizedDiceLoss (Sudre et al. 2017; not the GLF).
Pixel losses: BinaryCrossentropyLoss (pos_weight), CategoricalCrossentropyLoss (class weights),
    BinaryFocalLoss, CategoricalFocalLoss (Lin et al. 2017).
Overlap + pixel: DiceCELoss, DiceFocalLoss, ComboLoss (Taghanaki et al. 2019), ExpLogLoss
    (Wong et al. 2018), the unified focal family (Yeung et al. 2022: SymmetricFocalLoss,
    AsymmetricFocalLoss, SymmetricFocalTverskyLoss, AsymmetricFocalTverskyLoss,
    UnifiedFocalLoss).
Hard pixels and errors: TopKCrossEntropyLoss (Wu et al. 2016), SensitivitySpecificityLoss
    (Brosch et al. 2015), AsymmetricSimilarityLoss (Hashemi et al. 2018), LovaszSoftmaxLoss and
    LovaszHingeLoss (Berman et al. 2018).
Distance based (signed distance maps from ``keras_losses.distance_maps`` in the data pipeline):
    BoundaryLoss and DiceBoundaryLoss with its BoundaryRebalancing schedule (Kervadec et al.
    2019), OneSidedHausdorffDTLoss (Karimi & Salcudean 2019).
Compounds of Ma et al. 2021: DiceTopKLoss, DiceBoundaryLoss (with DiceCELoss, DiceFocalLoss).
Combinations: CombinedLoss (any weighted sum, e.g. BCE + Dice + Focal).
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
from keras_losses.asymmetric import AsymmetricSimilarityLoss
from keras_losses.boundary import BoundaryLoss, BoundaryRebalancing, DiceBoundaryLoss
from keras_losses.combined import CombinedLoss
from keras_losses.compound import ComboLoss, DiceCELoss, DiceFocalLoss
from keras_losses.contrastive import ContrastiveLoss
from keras_losses.crossentropy import BinaryCrossentropyLoss, CategoricalCrossentropyLoss
from keras_losses.dice import DiceLoss
from keras_losses.effectiveness import EffectivenessLoss
from keras_losses.exp_log import ExpLogLoss
from keras_losses.focal import BinaryFocalLoss, CategoricalFocalLoss
from keras_losses.generalized import GeneralizedLoss, GLFState
from keras_losses.generalized_dice import GeneralizedDiceLoss
from keras_losses.hausdorff import OneSidedHausdorffDTLoss
from keras_losses.jaccard import JaccardLoss
from keras_losses.lovasz import LovaszHingeLoss, LovaszSoftmaxLoss
from keras_losses.ranking import (
    ClassWeightedCategoricalCrossentropy,
    LossEstimatorLoss,
    MarginRankingLoss,
)
from keras_losses.sensitivity_specificity import SensitivitySpecificityLoss
from keras_losses.squared_dice import SquaredDiceLoss
from keras_losses.topk import DiceTopKLoss, TopKCrossEntropyLoss
from keras_losses.tversky import FocalTverskyLoss, TverskyLoss
from keras_losses.unified_focal import (
    AsymmetricFocalLoss,
    AsymmetricFocalTverskyLoss,
    SymmetricFocalLoss,
    SymmetricFocalTverskyLoss,
    UnifiedFocalLoss,
)

__all__ = [
    "PACKAGE",
    "soft_counts",
    "GeneralizedLoss",
    "GLFState",
    "DiceLoss",
    "EffectivenessLoss",
    "TverskyLoss",
    "FocalTverskyLoss",
    "SquaredDiceLoss",
    "JaccardLoss",
    "GeneralizedDiceLoss",
    "BinaryCrossentropyLoss",
    "CategoricalCrossentropyLoss",
    "BinaryFocalLoss",
    "CategoricalFocalLoss",
    "DiceCELoss",
    "DiceFocalLoss",
    "ComboLoss",
    "ExpLogLoss",
    "SymmetricFocalLoss",
    "AsymmetricFocalLoss",
    "SymmetricFocalTverskyLoss",
    "AsymmetricFocalTverskyLoss",
    "UnifiedFocalLoss",
    "TopKCrossEntropyLoss",
    "SensitivitySpecificityLoss",
    "AsymmetricSimilarityLoss",
    "LovaszSoftmaxLoss",
    "LovaszHingeLoss",
    "BoundaryLoss",
    "DiceBoundaryLoss",
    "BoundaryRebalancing",
    "OneSidedHausdorffDTLoss",
    "DiceTopKLoss",
    "CombinedLoss",
    "ContrastiveLoss",
    "MarginRankingLoss",
    "LossEstimatorLoss",
    "ClassWeightedCategoricalCrossentropy",
    "DeterministicGLFCallback",
    "ExploratoryGLFModel",
    "prepare_adaptive_glf",
]
