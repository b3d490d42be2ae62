"""Real LIDC-IDRI nodules for the nodules study: scenarios, patient-grouped splits, the sets of a run.

The synthetic study ties malignancy to the nodule's intensity in the training set and breaks
the tie at test time. On real nodules two rated attributes shift the intensity the same way
(mean HU inside the mask on the crop's slice, shared copy: ground-glass / part-solid about
-620 / -480, solid about -200, calcified about +240): the Texture rating and the
Calcification rating. The scenarios (docs/nodules.md, "Real nodules", fixed before any model
was trained, from the counts of Texture x Calcification x Diagnosis):

    control        train: every nodule; test: every nodule of other patients (in distribution)
    texture        train: malignant solid vs benign subsolid (malignant brighter, like S2's
                   D(180,160)); tests: tie kept, tie reversed (malignant subsolid vs benign
                   solid, like D(150,190)), and every nodule
    calcification  train: malignant solid vs benign calcified (benign brighter); tests: tie
                   kept, tie broken (solid vs solid, both non-calcified), and every nodule.
                   Reversal is impossible: 4 of 761 calcified nodules are malignant.

Solid: Texture 4-5 and no calcification; subsolid: Texture 1-3 (none is calcified); calcified:
any Calcification rating but "Absent". Each seed splits the patients (never the nodules) into
training, validation and test patients; a scenario takes from each part the nodules its
conditions select. The training set is balanced by repeating minority-class nodules (the
paper's sets are balanced; repeating keeps every nodule, where dropping majority ones would
throw most of the scarce combinations away).
"""

from __future__ import annotations

import functools

import numpy as np

CALCIFICATION_ABSENT = 6  # data.lidc: Calcification_value 6 = "Absent"


def _solid(r) -> bool:
    return r["texture"] >= 4 and r["calcification"] == CALCIFICATION_ABSENT


def _subsolid(r) -> bool:
    return r["texture"] <= 3 and r["calcification"] == CALCIFICATION_ABSENT


def _calcified(r) -> bool:
    return r["calcification"] != CALCIFICATION_ABSENT


def _any(r) -> bool:
    return True


# scenario -> (training selection {label: condition}, {test name: selection}); 1 malignant, 0 benign
SCENARIOS = {
    "control": ({1: _any, 0: _any}, {"all": {1: _any, 0: _any}}),
    "texture": (
        {1: _solid, 0: _subsolid},
        {"tie kept": {1: _solid, 0: _subsolid}, "tie reversed": {1: _subsolid, 0: _solid}, "all": {1: _any, 0: _any}},
    ),
    "calcification": (
        {1: _solid, 0: _calcified},
        {"tie kept": {1: _solid, 0: _calcified}, "tie broken": {1: _solid, 0: _solid}, "all": {1: _any, 0: _any}},
    ),
}
SCENARIO_TEXT = {
    "control": "every nodule (in distribution)",
    "texture": "malignant solid vs benign subsolid",
    "calcification": "malignant solid vs benign calcified",
}


def crop_spec(cfg: dict):
    from data.lidc import CropSpec

    return CropSpec(size=int(cfg["image_size"]), spacing_mm=float(cfg["pixel_spacing"]), hu_window=(float(cfg["hu_min"]), float(cfg["hu_max"])))


@functools.lru_cache(maxsize=4)
def _nodules(data_dir: str, spec, cache_dir):
    from data.lidc import load_nodules
    from tasks.nodules.config import log

    found = load_nodules(data_dir, spec, cache_dir=cache_dir, log=log)
    for message in found.skipped:
        log(f"skipped: {message}")
    return found


def nodules_of(cfg: dict):
    """The :class:`data.lidc.NoduleSet` of a run's ``data_dir`` (read once per process)."""
    return _nodules(str(cfg["data_dir"]), crop_spec(cfg), cfg.get("cache_dir"))


def split_patients(patients, seed: int, val_fraction: float, test_fraction: float) -> dict:
    """patient -> "train" / "val" / "test", a seeded permutation of the sorted patient ids."""
    ids = sorted(set(patients))
    order = np.random.default_rng([seed, 20]).permutation(len(ids))
    n_test, n_val = round(len(ids) * test_fraction), round(len(ids) * val_fraction)
    part = {}
    for rank, k in enumerate(order):
        part[ids[k]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return part


def select(info, labels, parts, part: str, selection: dict) -> np.ndarray:
    """Indices of the nodules of patients in ``part`` that ``selection`` takes for their label."""
    return np.array(
        [i for i, r in enumerate(info) if parts[r["patient_id"]] == part and int(labels[i]) in selection and selection[int(labels[i])](r)],
        dtype=int,
    )


def balance(indices, labels, seed: int) -> np.ndarray:
    """``indices`` with minority-class nodules repeated until both classes are equally many:
    whole copies, then a seeded draw without repetition for the remainder."""
    rng = np.random.default_rng([seed, 21])
    by = {c: indices[labels[indices] == c] for c in (0, 1)}
    if min(len(v) for v in by.values()) == 0:
        raise ValueError(f"the training selection holds {len(by[1])} malignant and {len(by[0])} benign nodules; need both")
    small, large = sorted(by.values(), key=len)
    extra = np.concatenate([np.tile(small, len(large) // len(small) - 1), rng.choice(small, len(large) % len(small), replace=False)])
    out = np.concatenate([large, small, extra.astype(int)])
    return out[rng.permutation(len(out))]


def run_sets(cfg: dict) -> dict:
    """{"train", "val", test names...} -> indices into :func:`nodules_of` for a run's config."""
    found = nodules_of(cfg)
    parts = split_patients([r["patient_id"] for r in found.info], int(cfg["seed"]), float(cfg["val_fraction"]), float(cfg["test_fraction"]))
    train_sel, tests = SCENARIOS[cfg["scenario"]]
    sets = {
        "train": balance(select(found.info, found.labels, parts, "train", train_sel), found.labels, int(cfg["seed"])),
        "val": select(found.info, found.labels, parts, "val", train_sel),
    }
    for name, sel in tests.items():
        sets[name] = select(found.info, found.labels, parts, "test", sel)
    return sets


def real_training_data(cfg: dict):
    """(x_train, y_train, x_val, y_val) of a real-nodule run."""
    found, sets = nodules_of(cfg), run_sets(cfg)
    tr, va = sets["train"], sets["val"]
    return found.images[tr], found.labels[tr], found.images[va], found.labels[va]


def real_test_sets(cfg: dict) -> dict:
    """name -> (images, labels, mean HU) of the run's test sets (held-out patients)."""
    found, sets = nodules_of(cfg), run_sets(cfg)
    hu = np.array([r["mean_hu"] for r in found.info], np.float32)
    return {name: (found.images[i], found.labels[i], hu[i]) for name, i in sets.items() if name not in ("train", "val")}


def attribute_counts(info, labels) -> list[dict]:
    """Texture x Calcification x Diagnosis counts, the table the scenarios were chosen from."""
    from collections import Counter

    counts = Counter((r["texture"], r["calcification"] != CALCIFICATION_ABSENT, int(y)) for r, y in zip(info, labels, strict=True))
    return [
        {"texture": t, "calcified": c, "malignant": counts.get((t, c, 1), 0), "benign": counts.get((t, c, 0), 0)}
        for t in range(1, 6) for c in (False, True) if counts.get((t, c, 1)) or counts.get((t, c, 0))
    ]


def cue_report(probs, labels, mean_hu) -> dict:
    """How strongly p(malignant) follows the nodule's mean HU (the intensity cue) and the label,
    on one test set: Pearson r of each (nan where a side is constant)."""

    def r(a, b):
        a, b = np.asarray(a, float), np.asarray(b, float)
        return float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")

    return {"r_hu": r(probs, mean_hu), "r_label": r(probs, labels)}
