"""Configuration of a nodules run (the arrays it describes: :mod:`tasks.nodules.sets`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

from core.options import option
from tasks.nodules import paper
from tasks.nodules.paper import PAPER

LOSSES = ("ce", "contrastive")
SELECTIONS = ("best", "last")
ENCODERS = ("classic", "modern")  # architectures.lenet.ENCODER_VARIANTS
HEAD_INITS = ("glorot", "zeros")  # architectures.lenet.HEAD_INITS
HEAD_OUTPUTS = ("sigmoid", "softmax2")  # architectures.lenet.HEAD_OUTPUTS
# Default image sizes (--image-size): synthetic nodules as many pixels across as real ones
# (benchmarks/nodules_image_size.py); real crops of 25.6 mm at 0.4 mm.
SYNTHETIC_IMAGE_SIZE = 32
REAL_IMAGE_SIZE = 64
SALIENCY = ("score", "log_prob")
NOISE_ON = ("foreground", "image")  # data.nodules.NOISE_ON
# Generator settings a run's config carries (data.nodules.NoduleSpec fields); the paper gives
# none of them (docs/nodules.md, deviation ledger).
REAL_SCENARIOS = ("control", "texture", "calcification")  # tasks.nodules.real.SCENARIOS
GENERATOR_FIELDS = ("noise_sd", "noise_on", "scale", "anisotropy", "spikes", "spike_height")


@dataclass
class NodulesConfig:
    """Data, model and training settings of one nodule run (paper settings by default)."""

    loss: str = option("ce", f"ce: f+g end to end; contrastive: siamese f, then g on frozen f ({PAPER}, Fig. 1)", choices=LOSSES)
    train_dist: list[int] = option([150, 150], f"training distribution I_MAL,I_BEN: foreground intensity of malignant and benign nodules ({PAPER}: S1 150,150; S2 180,160; S3 180,150)")
    n_samples: int = option(paper.N_SAMPLES, f"samples drawn from the training distribution ({PAPER}: 200)")
    val_fraction: float = option(paper.VAL_FRACTION, f"fraction of them kept for validation ({PAPER}: 85 %% train, 15 %% validation)")
    epochs: int = option(paper.EPOCHS, f"training epochs of each stage ({PAPER}: 100)")
    # Optional, not `int | None`: training.config does not parse `X | None` flags yet.
    head_epochs: Optional[int] = option(None, "epochs of the classifier head on the frozen encoder (default: --epochs)")  # noqa: UP045
    head_lr: float = option(
        paper.LEARNING_RATE,
        "Adam learning rate of the head g on the frozen contrastive encoder ("
        f"{PAPER}, Sec. 3: 'The networks are trained using the Adam optimizer (learning rate = 1e-4) "
        "for 100 epochs'; the modern ReLU encoder needed 1e-2, docs/nodules.md)",
    )
    head_init: str = option(
        "glorot",
        f"initial weights of the head g, in both models (not stated in {PAPER}): glorot (Keras's default) or "
        "zeros (g starts at the uniform prediction; docs/nodules.md)",
        choices=HEAD_INITS,
    )
    head_output: str = option(
        "sigmoid",
        f"output layer of the head g: sigmoid (one output f(X) in (0, 1), {PAPER} Eq. (1)) or softmax2 "
        "(two outputs and a softmax; the same cross-entropy, another parameterisation; docs/nodules.md)",
        choices=HEAD_OUTPUTS,
    )
    saliency: str = option(
        "score",
        "saliency maps (Fig. 3): score (|dS_c/dx| of the class score, Simonyan et al. 2014, the paper's [7]) or "
        "log_prob (|d log p_c/dx|)",
        choices=SALIENCY,
    )
    batch_size: int = option(paper.BATCH_SIZE, f"batch size; contrastive pairs are all pairs within a batch ({PAPER}: 32)")
    lr: float = option(paper.LEARNING_RATE, f"Adam learning rate ({PAPER}: 1e-4)")
    margin: float = option(paper.MARGIN, f"contrastive loss margin m (Hadsell et al. 2006; {PAPER}: 1)")
    encoder: str = option(
        "classic",
        f"LeNet-5 encoder: classic (LeCun et al. 1998: tanh units, average-pooling sub-sampling; {PAPER}: "
        "'Both architectures are based on the well-established LeNet-5') or modern (ReLU, max pooling)",
        choices=ENCODERS,
    )
    embedding_dim: int = option(84, "width of the encoder's last layer F6 (LeNet-5: 84)")
    image_size: Optional[int] = option(  # noqa: UP045
        None,
        f"image height and width in pixels (not stated in {PAPER}); default 32 for the synthetic nodules: of the "
        "candidates 32 (LeNet-5's input) and 64, the size whose synthetic nodules are nearest in pixels across to "
        "the real LIDC-IDRI nodules on their CT slices (benchmarks/nodules_image_size.py; docs/nodules.md); "
        "default 64 for real nodules (--data-dir: 25.6 mm crops at --pixel-spacing 0.4)",
    )
    noise_sd: float = option(8.0, f"standard deviation of the pixel noise (not stated in {PAPER}; our choice)")
    noise_on: str = option(
        "foreground",
        f"pixels that get noise: foreground (the nodule; {PAPER}, Sec. 2.1: 'the background intensities "
        "remain fixed for all samples') or image (every pixel)",
        choices=NOISE_ON,
    )
    scale: float = option(0.08, f"random isotropic scale is uniform in 1 +- SCALE (not stated in {PAPER}; our choice)")
    anisotropy: float = option(0.05, f"random per-axis scale ratio is uniform in 1 +- ANISOTROPY (not stated in {PAPER})")
    spikes: int = option(11, f"spikes on the malignant base shape (not stated in {PAPER}; our choice)")
    spike_height: float = option(
        0.6, f"spike height as a fraction of the malignant core radius (not stated in {PAPER}; our choice)"
    )
    data_dir: Optional[str] = option(  # noqa: UP045
        None,
        "folder of real nodule volumes (image/ and nodule_mask/ NIfTI pairs and nodules.csv, e.g. "
        "../shared/data/lidc_nodules; tasks/nodules/real.py); default: the synthetic nodules",
    )
    scenario: str = option(
        "control",
        "real nodules: which nodules train and test (control, texture, calcification; docs/nodules.md, Real nodules)",
        choices=REAL_SCENARIOS,
    )
    pixel_spacing: float = option(0.4, "real nodules: crop pixel spacing in mm (our choice, data/lidc.py::CropSpec)")
    hu_min: float = option(-1000.0, "real nodules: HU mapped to 0 (window low end; our choice)")
    hu_max: float = option(400.0, "real nodules: HU mapped to 255 (window high end; our choice)")
    test_fraction: float = option(0.35, "real nodules: fraction of the patients held out for testing (our choice)")
    cache_dir: Optional[str] = option(None, "real nodules: folder of the crop cache (default: the user cache folder)")  # noqa: UP045
    select: str = option("best", "model used for evaluation: best (lowest validation loss) or last epoch", choices=SELECTIONS)
    seed: int = option(0, "seed of the training data, the split, shuffling and initialisation")

    def __post_init__(self):
        from data.nodules import parse_distribution

        if self.loss not in LOSSES:
            raise ValueError(f"--loss must be one of {', '.join(LOSSES)}; received {self.loss!r}")
        self.train_dist = list(parse_distribution(self.train_dist, "--train-dist"))
        if self.encoder not in ENCODERS:
            raise ValueError(f"--encoder must be one of {', '.join(ENCODERS)}; received {self.encoder!r}")
        if self.head_output not in HEAD_OUTPUTS:
            raise ValueError(f"--head-output must be one of {', '.join(HEAD_OUTPUTS)}; received {self.head_output!r}")
        if self.saliency not in SALIENCY:
            raise ValueError(f"--saliency must be one of {', '.join(SALIENCY)}; received {self.saliency!r}")
        if self.head_init not in HEAD_INITS:
            raise ValueError(f"--head-init must be one of {', '.join(HEAD_INITS)}; received {self.head_init!r}")
        if self.noise_on not in NOISE_ON:
            raise ValueError(f"--noise-on must be one of {', '.join(NOISE_ON)}; received {self.noise_on!r}")
        if self.noise_sd < 0 or not 0 <= self.scale < 1 or not 0 <= self.anisotropy < 1 or self.spike_height < 0:
            raise ValueError(
                "--noise-sd and --spike-height must be >= 0 and --scale, --anisotropy in [0, 1); received "
                f"{self.noise_sd}, {self.spike_height}, {self.scale} and {self.anisotropy}"
            )
        for name in ("n_samples", "epochs", "batch_size", "embedding_dim", "spikes"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1; received {getattr(self, name)}")
        if self.head_epochs is not None and self.head_epochs < 1:
            raise ValueError(f"--head-epochs must be >= 1; received {self.head_epochs}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"--val-fraction must be in (0, 1); received {self.val_fraction}")
        if self.n_samples < 4 or round(self.n_samples * self.val_fraction) < 2:
            raise ValueError(
                f"--n-samples {self.n_samples} with --val-fraction {self.val_fraction} leaves fewer "
                "than 2 validation samples; use more samples"
            )
        if self.scenario not in REAL_SCENARIOS:
            raise ValueError(f"--scenario must be one of {', '.join(REAL_SCENARIOS)}; received {self.scenario!r}")
        if self.data_dir is not None:
            from pathlib import Path

            if not Path(self.data_dir).is_dir():
                raise ValueError(f"--data-dir {self.data_dir}: no such folder")
            # Absolute, so evaluate.py and predict.py find the data from any working folder.
            self.data_dir = str(Path(self.data_dir).resolve())
            if self.cache_dir is not None:
                self.cache_dir = str(Path(self.cache_dir).resolve())
            if self.pixel_spacing <= 0 or self.hu_min >= self.hu_max or not 0 < self.test_fraction < 1 - self.val_fraction:
                raise ValueError(
                    "--pixel-spacing must be > 0, --hu-min < --hu-max and --test-fraction in (0, 1 - --val-fraction); "
                    f"received {self.pixel_spacing}, {self.hu_min}, {self.hu_max}, {self.test_fraction}"
                )
        if self.image_size is None:
            self.image_size = REAL_IMAGE_SIZE if self.data_dir is not None else SYNTHETIC_IMAGE_SIZE
        if self.image_size < 32:
            raise ValueError(f"--image-size must be at least 32 for LeNet-5; received {self.image_size}")
        if self.lr <= 0 or self.head_lr <= 0 or self.margin <= 0:
            raise ValueError(
                f"--lr, --head-lr and --margin must be positive; received {self.lr}, {self.head_lr} and {self.margin}"
            )


def log(message: str) -> None:
    print(f"[nodules {time.strftime('%H:%M:%S')}] {message}", flush=True)


def nodule_spec(cfg: dict):
    """The generator settings of a run's config. Runs saved before a setting existed get the
    value they were made with (NoduleSpec's default)."""
    from data.nodules import NoduleSpec

    kept = {name: cfg[name] for name in GENERATOR_FIELDS if name in cfg}
    return NoduleSpec(size=int(cfg["image_size"]), **kept)


def seed_of_test_set(seed: int, dist) -> int:
    """The data seed of the test set D(dist) of run seed ``seed``: never a training seed,
    and different for every test distribution."""
    return 1_000_000 + int(seed) * 65_536 + int(dist[0]) * 256 + int(dist[1])

