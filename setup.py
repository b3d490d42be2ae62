"""Installable package for the keras-losses reproduction study.

The design card fixes the top-level packages: ``keras_losses`` (losses and the
callbacks/train steps that adapt them), ``architectures`` (model builders), ``data``
(tf.data pipelines), plus ``evaluation`` (metrics, attacks, OOD, figures),
``tasks`` (one package per study), ``inference`` (load saved runs and predict), ``core``
(atomic file IO and config fields, below everything else) and ``training`` (run directories, fitting,
distribution).
"""

from setuptools import find_packages, setup

setup(
    name="keras-losses-repro",
    version="0.1.0",
    description=(
        "Keras 3 loss functions for medical imaging and reproductions of four "
        "loss-function studies (adaptive GLF, contrastive vs CE on synthetic "
        "nodules, loss estimators with ODIN, BCE/Dice/Focal robustness)."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(
        include=[
            "core*",
            "keras_losses*",
            "architectures*",
            "data*",
            "evaluation*",
            "inference*",
            "tasks*",
            "training*",
        ]
    ),
    py_modules=["train", "evaluate", "reproduce", "predict"],
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.15",
        "tensorboard>=2.20",  # TF 2.21 no longer pulls it in; Keras TensorBoard callback needs it
        "numpy>=1.26",
        "scipy>=1.11",
        "scikit-learn>=1.4",
        "scikit-image>=0.22",
        "nibabel>=5.2",
        "opencv-python-headless>=4.9",
        "matplotlib>=3.8",
        "h5py>=3.10",
        "pillow>=10",  # data.validate.check_image: full decode catches truncated JPEG/PNG
    ],
    extras_require={
        # medpy: the reference HD95 that evaluation/surface_distance.py is tested against
        "test": ["pytest>=8", "hypothesis>=6.100", "ruff>=0.5", "medpy>=0.5"],
    },
)
