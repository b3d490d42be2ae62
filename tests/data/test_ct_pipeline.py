"""The CT pipeline: slice selection, patient split, cache reuse, tf.data output, augmentation."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import tensorflow as tf

from data.augment import AugmentConfig, augment_batch, bspline_basis
from data.ct import CTDataConfig, make_split, prepare_ct_data

SHAPE = (32, 32, 20)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_LOSSES_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def msd(tmp_path):
    """10 cases of 20 slices; case i has tumour on slices 5..5+i//2+1 (1..5 tumour slices)."""
    root = tmp_path / "msd"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    training = []
    rng = np.random.default_rng(0)
    for i in range(10):
        hu = rng.integers(-1000, 400, SHAPE).astype(np.int16)
        label = np.zeros(SHAPE, np.uint8)
        label[8:12, 8:12, 5:5 + i // 2 + 1] = 1
        name = f"lung_{i:03d}.nii.gz"
        nib.save(nib.Nifti1Image(hu, np.eye(4)), str(root / "imagesTr" / name))
        nib.save(nib.Nifti1Image(label, np.eye(4)), str(root / "labelsTr" / name))
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    (root / "dataset.json").write_text(json.dumps({"training": training}))
    return root


def cfg(root, **kw):
    base = dict(data_dir=str(root), image_size=32, verbose=False, augment=False,
                val_fraction=0.2, test_fraction=0.2, tumour_free_ratio=0.5, seed=3)
    return CTDataConfig(**{**base, **kw})


def test_split_by_patient_disjoint_seeded_and_saved(msd, tmp_path):
    data = prepare_ct_data(cfg(msd), run_dir=tmp_path / "run")
    s = data.split
    assert set(s["train"]) | set(s["val"]) | set(s["test"]) == {f"lung_{i:03d}" for i in range(10)}
    assert not (set(s["train"]) & set(s["val"]) or set(s["train"]) & set(s["test"]) or set(s["val"]) & set(s["test"]))
    assert (len(s["train"]), len(s["val"]), len(s["test"])) == (6, 2, 2)
    # no slice of a test patient appears in training batches
    for split in ("train", "val", "test"):
        cases = {m["case_id"] for m in data.metadata(split, all_slices=True)}
        assert cases == set(s[split])
    saved = json.loads((tmp_path / "run" / "split.json").read_text())
    assert {k: saved[k] for k in ("train", "val", "test")} == s and saved["seed"] == 3
    assert prepare_ct_data(cfg(msd)).split == s  # same seed, same split
    assert prepare_ct_data(cfg(msd, seed=4)).split != s
    # an explicit split.json wins over the seed (evaluation reuses the run's test patients)
    again = prepare_ct_data(cfg(msd, seed=99), split=tmp_path / "run" / "split.json")
    assert again.split == s


def test_make_split_fractions():
    split = make_split([f"c{i}" for i in range(20)], 0.15, 0.2, seed=0)
    assert [len(split[k]) for k in ("train", "val", "test")] == [13, 3, 4]
    assert make_split(["a", "b"], 0.2, 0.2, 0)["train"]  # never an empty training set


def test_selection_ratio(msd):
    for ratio in (0.0, 0.5, 1.0, 2.0):
        data = prepare_ct_data(cfg(msd, tumour_free_ratio=ratio))
        for split in ("train", "val"):
            px = np.array([m["tumour_px"] for m in data.metadata(split, all_slices=False)])
            n_tumour = int((px > 0).sum())
            assert n_tumour == sum(int(c[-3:]) // 2 + 1 for c in data.split[split])  # every tumour slice
            assert int((px == 0).sum()) == round(ratio * n_tumour)
        assert data.num_slices("test") == 20 * len(data.split["test"])  # evaluation: every slice
    a = prepare_ct_data(cfg(msd)).indices("train")
    b = prepare_ct_data(cfg(msd, seed=3)).indices("train")
    np.testing.assert_array_equal(a, b)  # the tumour-free draw is seeded


def test_cache_reuse_decodes_nothing(msd, monkeypatch):
    first = prepare_ct_data(cfg(msd))
    loads = []
    real_load = nib.load
    monkeypatch.setattr(nib, "load", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    second = prepare_ct_data(cfg(msd))
    for _ in second.train(4):
        pass
    assert loads == []
    assert second.cache.path == first.cache.path
    # a different setting is a different cache, built by decoding again
    prepare_ct_data(cfg(msd, window=(-500, 500)))
    assert len(loads) >= 20


def test_datasets_shapes_values_and_order(msd):
    data = prepare_ct_data(cfg(msd))
    x, m = next(iter(data.train(4)))
    assert x.shape == (4, 32, 32, 1) and m.shape == (4, 32, 32, 1)
    assert x.dtype == tf.float32 and m.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 1.0
    assert set(np.unique(m.numpy()).tolist()) <= {0.0, 1.0}
    # test batches come in metadata order: the masks' pixel counts match
    px = np.concatenate([mask.numpy().sum(axis=(1, 2, 3)) for _, mask in data.test(8)])
    np.testing.assert_array_equal(px, [d["tumour_px"] for d in data.test_metadata])
    # training covers the selection exactly once per epoch, in a new order each epoch
    ds = data.train(4)
    counts = [np.concatenate([mask.numpy().sum(axis=(1, 2, 3)) for _, mask in ds]) for _ in range(2)]
    assert len(counts[0]) == data.num_slices("train", all_slices=False)
    assert sorted(counts[0]) == sorted(counts[1]) and not np.array_equal(counts[0], counts[1])


def test_augmentation_moves_image_and_mask_identically():
    rng = np.random.default_rng(0)
    mask = np.zeros((6, 48, 48, 1), np.float32)
    for b in range(6):
        y, x = rng.integers(8, 36, 2)
        mask[b, y:y + 9, x:x + 5] = 1.0
    config = AugmentConfig(max_rotation_deg=10.0, elastic_sigma=0.03)
    images, masks = augment_batch(tf.constant(mask), tf.constant(mask), tf.constant([1, 2]), config)
    images, masks = images.numpy(), masks.numpy()
    np.testing.assert_array_equal(images >= 0.5, masks == 1.0)
    assert not np.array_equal(masks, mask)  # something moved
    # same seed, same result; another seed, another result
    again = augment_batch(tf.constant(mask), tf.constant(mask), tf.constant([1, 2]), config)[1].numpy()
    other = augment_batch(tf.constant(mask), tf.constant(mask), tf.constant([1, 3]), config)[1].numpy()
    np.testing.assert_array_equal(again, masks)
    assert not np.array_equal(other, masks)


def test_augmentation_flip_only_is_exact():
    image = np.arange(16 * 16, dtype=np.float32).reshape(1, 16, 16, 1) / 256.0
    config = AugmentConfig(flip=True, max_rotation_deg=0.0, elastic_sigma=0.0)
    seen = set()
    for seed in range(12):
        out = augment_batch(tf.constant(image), tf.constant(image > 0.5), tf.constant([seed, 0]), config)[0].numpy()
        for name, ref in {"none": image, "lr": image[:, :, ::-1], "ud": image[:, ::-1], "both": image[:, ::-1, ::-1]}.items():
            if np.allclose(out, ref, atol=1e-6):
                seen.add(name)
                break
        else:
            raise AssertionError("a flip-only augmentation produced something other than a flip")
    assert seen == {"none", "lr", "ud", "both"}


def test_bspline_basis_partition_of_unity():
    basis = bspline_basis(37, 4)
    np.testing.assert_allclose(basis.sum(axis=1), 1.0, atol=1e-6)
    assert basis.shape == (37, 7) and (basis >= 0).all()


def test_training_pipeline_augments_and_differs_per_epoch(msd):
    data = prepare_ct_data(cfg(msd, augment=True))
    ds = data.train(64)  # Keras iterates one dataset once per epoch
    epochs = [[x.numpy() for x, _ in ds] for _ in range(2)]
    assert epochs[0][0].shape[1:] == (32, 32, 1)
    assert not np.array_equal(epochs[0][0], epochs[1][0])
    rerun = [x.numpy() for x, _ in prepare_ct_data(cfg(msd, augment=True)).train(64)]
    np.testing.assert_array_equal(rerun[0], epochs[0][0])  # seeded: a rerun repeats epoch 1
