"""Installs the library: ``keras_losses`` (losses and the callbacks/train steps that adapt them)
and ``architectures`` (model builders), nothing else.

The study code (``data``, ``core``, ``training``, ``tasks``, ``evaluation``, ``inference`` and the
command lines ``train.py``, ``evaluate.py``, ``predict.py``, ``reproduce.py``) runs from the
checkout: a script puts its own folder first on ``sys.path``, and ``python -m pytest`` run from
the root puts the root there. So no generic top-level name such as ``data`` lands in a user's
site-packages. The ``study`` extra adds what the study code needs beyond the library.
"""

from setuptools import find_packages, setup

STUDY = [
    "tensorboard>=2.20",  # TF 2.21 does not pull it in; Keras's TensorBoard callback needs it
    "scikit-learn>=1.4",
    "scikit-image>=0.22",
    "nibabel>=5.2",
    "opencv-python-headless>=4.9",
    "matplotlib>=3.8",  # also keras_losses.adaptive.figures (Figs. 6/7), imported on use
    "h5py>=3.10",
    "pillow>=10",  # data.validate.check_image: full decode catches truncated JPEG/PNG
]

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
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(
        include=["keras_losses", "keras_losses.*", "architectures", "architectures.*"]
    ),
    install_requires=[
        "tensorflow>=2.21,<2.22",  # the Keras backend the package is tested with (JAX also runs)
        "keras>=3.15",
        "numpy>=1.26",
        "scipy>=1.11",  # keras_losses.distance_maps (signed distance maps), imported on use
    ],
    extras_require={
        "study": STUDY,
        # medpy: the reference HD95 that evaluation/surface_distance.py is tested against;
        # jax: the loss tests run again under KERAS_BACKEND=jax
        "test": [*STUDY, "pytest>=8", "pytest-xdist>=3.5", "hypothesis>=6.100", "ruff>=0.5", "medpy>=0.5", "jax>=0.4.30"],
    },
)
