"""Adaptive GLF training (Seo, Bassenne, Xing, IEEE TMI 2021, Sec. II-B, Figs. 2, 6, 7).

The three coefficients of the :class:`~keras_losses.GeneralizedLoss` change at every
optimization step, starting from the Dice values (1, 1, 1):

- :class:`DeterministicGLFCallback` (``--loss glf-det``): Fig. 2b's five-band rule, a callback.
- :class:`ExploratoryGLFModel` (``--loss glf-exp``): Fig. 2a's 27-action search in the train
  step, exact and fast (two gradients serve all candidates), first-order, or the naive
  27-copy reference.
- :func:`prepare_adaptive_glf`: compile a model for a rule and build its callbacks.
- :func:`plot_coefficients` (Fig. 6) and :func:`plot_tversky_trajectory` (Fig. 7).
"""

from keras_losses.adaptive.deterministic import DeterministicGLFCallback, band_index
from keras_losses.adaptive.exploratory import (
    ACTIONS,
    KEEP_ACTION,
    ExploratoryGLFLogger,
    ExploratoryGLFModel,
    action_text,
    choose_action,
    glf_count_derivatives,
    mean_distance,
    tie_choice,
)
from keras_losses.adaptive.figures import (
    plot_coefficients,
    plot_tversky_trajectory,
    tversky_coordinates,
)
from keras_losses.adaptive.prepare import RULES, prepare_adaptive_glf
from keras_losses.adaptive.trajectory import (
    TRAJECTORY_CSV,
    GLFTrajectoryRecorder,
    glf_statistics,
    read_trajectory,
)

__all__ = [
    "ACTIONS",
    "KEEP_ACTION",
    "RULES",
    "TRAJECTORY_CSV",
    "DeterministicGLFCallback",
    "ExploratoryGLFLogger",
    "ExploratoryGLFModel",
    "GLFTrajectoryRecorder",
    "action_text",
    "band_index",
    "choose_action",
    "glf_count_derivatives",
    "glf_statistics",
    "mean_distance",
    "plot_coefficients",
    "plot_tversky_trajectory",
    "prepare_adaptive_glf",
    "read_trajectory",
    "tie_choice",
    "tversky_coordinates",
]
