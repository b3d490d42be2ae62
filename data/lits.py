"""LiTS layout: ``volume-N.nii`` with ``segmentation-N.nii`` (0 background, 1 liver, 2 tumour).

Files may sit in one folder or in sub-folders (the challenge ships "Training Batch 1/2");
``.nii.gz`` is accepted as well as ``.nii``. Segmentations stored as float are rounded when
read (:func:`data.msd.load_label`), and volumes are reoriented to canonical before slicing
(:func:`data.msd.load_canonical`), as orientation differs between LiTS volumes.
"""

from __future__ import annotations

import re
from pathlib import Path

from data.msd import Case
from data.validate import DataError

LITS_LABELS = (0, 1, 2)  # background, liver, tumour
LITS_TUMOUR = 2

_VOLUME = re.compile(r"^volume-(\d+)\.nii(\.gz)?$")
_SEGMENTATION = re.compile(r"^segmentation-(\d+)\.nii(\.gz)?$")


def is_lits_folder(root) -> bool:
    """Whether ``root`` holds at least one ``volume-N.nii[.gz]`` file (searched recursively)."""
    return any(_VOLUME.match(p.name) for p in Path(root).rglob("volume-*.nii*"))


def list_lits_cases(root) -> list[Case]:
    """Pair every ``volume-N`` with its ``segmentation-N``, sorted by N.

    Raises :class:`DataError` naming the file when a volume has no segmentation, a
    segmentation has no volume, or N occurs twice.
    """
    root = Path(root)
    volumes, segmentations = {}, {}
    for path in sorted(root.rglob("*.nii*")):
        if path.name.startswith("."):
            continue
        for pattern, table in ((_VOLUME, volumes), (_SEGMENTATION, segmentations)):
            match = pattern.match(path.name)
            if match:
                n = int(match.group(1))
                if n in table:
                    raise DataError(f"{path}: case {n} occurs twice (also {table[n]})")
                table[n] = path
    if not volumes:
        raise DataError(f"{root}: no LiTS volume-N.nii files found")
    for n, path in segmentations.items():
        if n not in volumes:
            raise DataError(f"{path}: segmentation without a matching volume-{n}.nii in {root}")
    cases = []
    for n in sorted(volumes):
        if n not in segmentations:
            raise DataError(f"{volumes[n]}: label file segmentation-{n}.nii is missing in {root}")
        cases.append(Case(case_id=f"volume-{n}", image=volumes[n], label=segmentations[n]))
    return cases
