"""Synthetic lung nodules of Baltatzis et al. 2021: two base shapes, deformed, two intensities.

Each sample is its class's base shape (benign: a smooth convex ellipse; malignant: a disc with
spikes on its perimeter) under a random affine transform followed by a random free-form
deformation (a cubic B-spline control grid). Both deformations define one sampling map, and
the image and the mask are both rendered from it, so they always agree. The foreground has
intensity mode ``i`` (110..200 in the paper) with pixel noise; the background is one fixed value
("the background intensities remain fixed for all samples", Baltatzis et al. 2021, Sec. 2.1),
so by default the noise is on the foreground only.

The sizes are calibrated to the paper's whole-image intensity facts, on which its scenarios rest: at
D(150, 150) the mean of a malignant image is about 110 and of a benign one about 114, at
D(180, 160) both are about 117. Solving those gives a background of 98, malignant shapes
covering 23 % of the image and benign ones 31 %.

Samples are drawn with ``numpy.random.default_rng((seed, index))``: sample ``index`` of a set
is the same whatever the set's size, and the same on every machine. The arrays are small (a
few hundred 64x64 images), so they are generated once and served by ``tf.data`` from memory
(no ``numpy_function`` in a ``map``, which would hold the GIL every epoch).

Reference:
    V. Baltatzis et al., "The effect of the loss on generalization: empirical study on
    synthetic lung nodule data", iMIMIC / MICCAI workshops 2021.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from data import validate
from data.validate import DataError

MALIGNANT, BENIGN = 1, 0
"""Class labels: malignant is the positive class (sensitivity is measured on it)."""

INTENSITY_MODES = tuple(range(110, 201, 10))
"""Foreground intensity modes of the paper: 110, 120, ..., 200."""

NOISE_ON = ("foreground", "image")
REFERENCE_SIZE = 64
"""Image size at which NoduleSpec's pixel lengths are given."""


@dataclasses.dataclass(frozen=True)
class NoduleSpec:
    """How nodules are drawn. Defaults are calibrated to the paper's intensity facts.

    Lengths in pixels (``shift``, ``grid_spacing``, ``ffd_sd``) are given for a 64x64 image
    and scaled with ``size``, so the image size changes the resolution only, never the shapes
    or their deformations.

    Args:
        size: image height and width in pixels (not stated in the paper; LeNet-5's input is
            32x32; 64 is the nodules study's measured choice, docs/nodules.md).
        background: the fixed background intensity (98, solved from the paper's means).
        benign_area, malignant_area: fraction of the image the undeformed base shape
            covers. The paper's means need 0.31 and 0.23 after deformation; the random
            deformations enlarge the ellipse by about 2 % on average, hence 0.305.
        benign_aspect: ratio of the benign ellipse's axes (smooth and convex).
        spikes, spike_height, spike_sharpness: malignant spiculation: number of spikes,
            their height as a fraction of the core radius, and the exponent that makes them
            narrow (cos^p profile).
        noise_sd: standard deviation of the pixel noise (not stated in the paper).
        noise_on: ``"foreground"``: noise on the nodule only, the background stays one value
            (the paper's "background intensities remain fixed"); ``"image"``: on every pixel.
        rotation: affine rotation is uniform in [-rotation, rotation] radians.
        scale: isotropic scale is uniform in [1 - scale, 1 + scale].
        anisotropy: per-axis scale ratio is uniform in [1 - anisotropy, 1 + anisotropy].
        shear: shear is uniform in [-shear, shear].
        shift: translation is uniform in [-shift, shift] pixels per axis (at 64x64).
        grid_spacing: spacing of the B-spline control grid in pixels (at 64x64).
        ffd_sd: standard deviation of the control-point displacements in pixels (at 64x64).
        supersample: sub-pixel samples per axis when rendering (anti-aliasing).
    """

    size: int = 64
    background: float = 98.0
    benign_area: float = 0.305
    malignant_area: float = 0.23
    benign_aspect: float = 1.2
    spikes: int = 11
    spike_height: float = 0.6
    spike_sharpness: float = 80.0
    noise_sd: float = 8.0
    noise_on: str = "foreground"
    rotation: float = math.pi
    scale: float = 0.08
    anisotropy: float = 0.05
    shear: float = 0.05
    shift: float = 2.0
    grid_spacing: float = 16.0
    ffd_sd: float = 1.5
    supersample: int = 4

    def __post_init__(self):
        if self.size < 16:
            raise ValueError(f"NoduleSpec.size must be at least 16 pixels; received {self.size}")
        for name in ("benign_area", "malignant_area"):
            value = getattr(self, name)
            if not 0 < value < 0.6:
                raise ValueError(f"NoduleSpec.{name} must be in (0, 0.6); received {value}")
        if self.noise_on not in NOISE_ON:
            raise ValueError(f"NoduleSpec.noise_on must be one of {NOISE_ON}; received {self.noise_on!r}")
        if self.noise_sd < 0:
            raise ValueError(f"NoduleSpec.noise_sd must be >= 0; received {self.noise_sd}")
        if self.spikes < 1 or self.spike_height < 0:
            raise ValueError(
                f"NoduleSpec: expected spikes >= 1 and spike_height >= 0; received {self.spikes} and {self.spike_height}"
            )
        if self.supersample < 1:
            raise ValueError(f"NoduleSpec.supersample must be >= 1; received {self.supersample}")


def parse_distribution(text, name: str = "--train-dist") -> tuple[int, int]:
    """``"180,160"`` (or a pair) -> (i_mal, i_ben), checked against the intensity range."""
    if isinstance(text, str):
        parts = [p for p in text.replace(" ", "").split(",") if p]
    else:
        parts = list(text)
    try:
        values = tuple(int(float(p)) for p in parts)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected two intensities 'I_MAL,I_BEN' such as 180,160; received {text!r}") from None
    if len(values) != 2:
        raise ValueError(f"{name}: expected two intensities 'I_MAL,I_BEN' such as 180,160; received {text!r}")
    for v in values:
        if not 0 < v < 255:
            raise ValueError(f"{name}: intensities must be in (0, 255); received {values}")
    return values


# ---------------------------------------------------------------------------- base shapes


def _spike_profile(theta, spec: NoduleSpec):
    """Relative radius 1 + h * sum_k max(0, cos(theta - theta_k))^p of the malignant shape."""
    # The spike angles are part of the fixed base shape: evenly spaced with a fixed jitter.
    k = np.arange(spec.spikes)
    angles = 2 * np.pi * k / spec.spikes + 0.25 * np.sin(3.1 * k + 0.7)
    c = np.cos(theta[..., None] - angles)  # (..., spikes)
    return 1.0 + spec.spike_height * np.sum(np.maximum(c, 0.0) ** spec.spike_sharpness, axis=-1)


@functools.lru_cache(maxsize=32)
def _base_radii(spec: NoduleSpec) -> tuple[float, float, float]:
    """(benign semi-axis a, benign semi-axis b, malignant core radius) in pixels for the areas."""
    area_px = spec.size * spec.size
    benign = area_px * spec.benign_area  # pi a b with a = aspect * b
    b = math.sqrt(benign / (math.pi * spec.benign_aspect))
    theta = np.linspace(0, 2 * np.pi, 20000, endpoint=False)
    rel = _spike_profile(theta, spec)
    rel_area = 0.5 * np.mean(rel**2) * 2 * np.pi  # area of r(theta) with unit core radius
    core = math.sqrt(area_px * spec.malignant_area / rel_area)
    return spec.benign_aspect * b, b, core


def _inside(qx, qy, label: int, spec: NoduleSpec):
    """True where base-frame points (pixels, origin at the centre) are inside the base shape."""
    a, b, core = _base_radii(spec)
    if label == BENIGN:
        return (qx / a) ** 2 + (qy / b) ** 2 <= 1.0
    rho = np.hypot(qx, qy)
    return rho <= core * _spike_profile(np.arctan2(qy, qx), spec)


# ---------------------------------------------------------------------------- deformations


def _bspline3(t):
    """Uniform cubic B-spline kernel B3(t), support [-2, 2]."""
    t = np.abs(t)
    out = np.where(t < 1, 2.0 / 3.0 - t**2 + 0.5 * t**3, 0.0)
    return np.where((t >= 1) & (t < 2), (2.0 - t) ** 3 / 6.0, out)


def bspline_basis(coords, n_points: int, spacing: float):
    """Weights (len(coords), n_points) of control points at -spacing, 0, spacing, ...

    A dense displacement along one axis pair is ``W_y @ C @ W_x.T`` for a control grid C.
    """
    knots = (np.arange(n_points) - 1) * spacing
    return _bspline3((coords[:, None] - knots[None, :]) / spacing)


def random_affine(rng: np.random.Generator, spec: NoduleSpec):
    """A forward 2x2 linear map (rotation, scale, anisotropy, shear) and a shift (x, y)."""
    angle = rng.uniform(-spec.rotation, spec.rotation)
    s = rng.uniform(1 - spec.scale, 1 + spec.scale)
    an = rng.uniform(1 - spec.anisotropy, 1 + spec.anisotropy)
    sh = rng.uniform(-spec.shear, spec.shear)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    scale = np.diag([s * an, s / an])
    shear = np.array([[1.0, sh], [0.0, 1.0]])
    shift = spec.shift * spec.size / REFERENCE_SIZE
    return rot @ scale @ shear, rng.uniform(-shift, shift, size=2)


def render_occupancy(label: int, rng: np.random.Generator, spec: NoduleSpec):
    """Fraction of each pixel covered by the deformed base shape, (size, size) in [0, 1].

    Every sub-pixel point p is mapped back to the base frame by the free-form deformation
    (p + u(p)) and then the inverse affine transform; the shape is tested there. Image and
    mask are both made from this one map.
    """
    n, ss = spec.size, spec.supersample
    linear, shift = random_affine(rng, spec)
    px = n / REFERENCE_SIZE  # pixel lengths of the spec are for a 64x64 image
    spacing = spec.grid_spacing * px
    n_ctrl = int(math.ceil(n / spacing)) + 3
    ctrl = rng.normal(0.0, spec.ffd_sd * px, size=(2, n_ctrl, n_ctrl))  # (dy/dx, gy, gx)
    sub = (np.arange(n * ss) + 0.5) / ss  # sub-pixel coordinates in pixels
    w = bspline_basis(sub, n_ctrl, spacing)  # (n*ss, n_ctrl)
    uy = w @ ctrl[0] @ w.T  # (n*ss, n*ss)
    ux = w @ ctrl[1] @ w.T
    centre = n / 2.0
    py, px = np.meshgrid(sub - centre, sub - centre, indexing="ij")
    dy, dx = py + uy - shift[1], px + ux - shift[0]
    inv = np.linalg.inv(linear)
    qx = inv[0, 0] * dx + inv[0, 1] * dy
    qy = inv[1, 0] * dx + inv[1, 1] * dy
    inside = _inside(qx, qy, label, spec).astype(np.float32)
    return inside.reshape(n, ss, n, ss).mean(axis=(1, 3))


def generate_nodules(
    n: int, i_mal: float, i_ben: float, seed: int, spec: NoduleSpec | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` samples of D(i_mal, i_ben): images, masks and labels.

    Labels alternate (even index malignant, odd benign), so any prefix is balanced.

    Returns:
        images: float32 (n, size, size), intensities in [0, 255].
        masks: uint8 (n, size, size), 1 inside the nodule.
        labels: int32 (n,), 1 = malignant, 0 = benign.
    """
    spec = spec or NoduleSpec()
    if n < 1:
        raise ValueError(f"n must be a positive number of samples; received {n}")
    images = np.empty((n, spec.size, spec.size), np.float32)
    masks = np.empty((n, spec.size, spec.size), np.uint8)
    labels = np.where(np.arange(n) % 2 == 0, MALIGNANT, BENIGN).astype(np.int32)
    for idx in range(n):
        rng = np.random.default_rng((int(seed), idx))
        occ = render_occupancy(int(labels[idx]), rng, spec)
        noise = rng.normal(0.0, spec.noise_sd, occ.shape)  # (size, size)
        mode = i_mal if labels[idx] == MALIGNANT else i_ben
        if spec.noise_on == "foreground":
            # partial pixels mix the noisy foreground and the fixed background like a blurred edge
            image = spec.background + occ * (mode + noise - spec.background)
        else:
            image = spec.background + occ * (mode - spec.background) + noise
        images[idx] = np.clip(image, 0, 255)
        masks[idx] = occ >= 0.5
    return images, masks, labels


def check_arrays(images, labels, source: str = "nodule arrays") -> None:
    """Raise :class:`DataError` naming ``source`` if images/labels are not a valid set."""
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim not in (3, 4) or images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{source}: expected images (n, h, w[, 1]) and labels (n,); received "
            f"{images.shape} and {labels.shape}"
        )
    validate.raise_problems(validate.check_array(labels, source, labels=(0, 1), what="labels"))
    if not np.isfinite(images).all() or images.min() < 0 or images.max() > 255:
        raise DataError(
            f"{source}: expected finite intensities in [0, 255]; found "
            f"[{np.nanmin(images):g}, {np.nanmax(images):g}]"
        )


def make_dataset(images, labels, batch_size: int, *, shuffle: bool, seed: int = 0):
    """A ``tf.data.Dataset`` of (image (h, w, 1) float32 in [0, 255], label int32) batches.

    Shuffling is seeded and reshuffles every epoch, so a run is repeatable.
    """
    import tensorflow as tf

    check_arrays(images, labels)
    x = np.asarray(images, np.float32)
    if x.ndim == 3:
        x = x[..., None]
    ds = tf.data.Dataset.from_tensor_slices((x, np.asarray(labels, np.int32)))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def nodule_dataset(
    n: int,
    dist: tuple[int, int],
    seed: int,
    batch_size: int = 32,
    *,
    shuffle: bool = False,
    spec: NoduleSpec | None = None,
):
    """Generate ``n`` samples of D(dist) and serve them as a batched ``tf.data.Dataset``."""
    images, _, labels = generate_nodules(n, dist[0], dist[1], seed, spec)
    return make_dataset(images, labels, batch_size, shuffle=shuffle, seed=seed)
