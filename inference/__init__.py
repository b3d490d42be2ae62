"""Use trained models: segment NIfTI volumes, classify images.

    from inference import load_predictor
    predictor = load_predictor("runs/lung-glf-det")          # a run directory or a .keras file
    result = predictor.predict_volume("case_001.nii.gz")     # segmentation tasks
    result.mask, result.probabilities, result.summary
    rows = predictor.predict_images(["a.jpg", "b.jpg"])      # classification tasks

The preprocessing (Hounsfield window, slice axis, size, intensity scaling) is read from the
run directory's ``config.json``, never re-typed. ``keras.saving.load_model`` also works on
any saved model once ``keras_losses`` is imported (custom classes register on import).
"""

from inference.loading import load_predictor, resolve_model

__all__ = ["load_predictor", "resolve_model"]
