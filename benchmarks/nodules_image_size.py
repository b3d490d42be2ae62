"""The synthetic nodules' image size chosen by a criterion that does not look at Table 1.

    python benchmarks/nodules_image_size.py [--data-dir ../shared/data/lidc_nodules]

Baltatzis et al. 2021 do not state their image size. The synthetic images are crops around one
nodule, and the generator fixes the nodule's share of the image (its areas are solved from the
paper's whole-image intensity means, docs/nodules.md), so the image size sets how many pixels
across a nodule is. The criterion: a synthetic nodule should be as many pixels across as a real
lung nodule is on its CT slice. Measured on the LIDC-IDRI volumes of interest in shared/data:
the equivalent diameter (2 sqrt(area / pi)) of each nodule mask on its largest axial slice, in
the volume's own pixels; and on 400 synthetic images at each candidate size the equivalent
diameter of the nodule mask, in pixels. Candidates: 32 (LeNet-5's native input, the smallest the
network takes) and 64; the chosen size is the one whose median synthetic diameter is nearest the
real median on a log scale (a ratio of 2 off counts the same in either direction); a tie keeps 32.

Prints both medians and quartiles, the ratio at each candidate and the choice.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CANDIDATES = (32, 64)


def real_diameters_px(data_dir) -> np.ndarray:
    """Equivalent diameter in native pixels of every nodule mask on its largest axial slice."""
    from data.lidc import list_volumes
    from data.msd import load_nifti

    out = []
    for _, mask_path in list_volumes(data_dir):
        mask, _, _ = load_nifti(mask_path)
        area = (np.asarray(mask) > 0).sum(axis=(0, 1))
        if area.max() > 0:
            out.append(2.0 * math.sqrt(float(area.max()) / math.pi))
    return np.asarray(out)


def synthetic_diameters_px(size: int, n: int = 400, seed: int = 0) -> np.ndarray:
    """Equivalent diameter in pixels of the nodule mask of ``n`` synthetic images (half each class)."""
    from data.nodules import NoduleSpec, generate_nodules

    _, masks, _ = generate_nodules(n, 150, 150, seed, NoduleSpec(size=size))
    return 2.0 * np.sqrt(masks.reshape(n, -1).sum(axis=1) / math.pi)


def choose(real_median: float, synthetic_medians: dict[int, float]) -> int:
    """The candidate whose median synthetic diameter is nearest ``real_median`` in log ratio;
    a tie (within 1e-9) keeps the smallest candidate."""
    distance = {s: abs(math.log(m / real_median)) for s, m in synthetic_medians.items()}
    best = min(distance.values())
    return min(s for s, d in distance.items() if d <= best + 1e-9)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data/lidc_nodules", help="LIDC nodule folder (image/, nodule_mask/)")
    args = parser.parse_args(argv)
    if not Path(args.data_dir).is_dir():
        parser.error(f"--data-dir {args.data_dir}: no such folder")
    real = real_diameters_px(args.data_dir)
    q = np.percentile(real, [25, 50, 75])
    print(f"real LIDC nodules: n = {len(real)}, equivalent diameter on the largest slice, native pixels: "
          f"median {q[1]:.1f} (quartiles {q[0]:.1f} - {q[2]:.1f})")
    medians = {}
    for size in CANDIDATES:
        syn = synthetic_diameters_px(size)
        s = np.percentile(syn, [25, 50, 75])
        medians[size] = float(s[1])
        print(f"synthetic at {size}x{size}: median {s[1]:.1f} px (quartiles {s[0]:.1f} - {s[2]:.1f}); "
              f"ratio to the real median {s[1] / q[1]:.2f}")
    print(f"chosen image size: {choose(float(q[1]), medians)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
