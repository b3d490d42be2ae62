"""Volume inference: masks come back in the input's shape, affine and orientation."""

import json

import keras
import nibabel as nib
import numpy as np
import pytest

import predict
from inference import load_predictor
from inference.segmentation import summarize


def threshold_model(size: int) -> keras.Model:
    """A 1x1 convolution whose output is sigmoid(40 (x - 0.5)): mask = windowed input > 0.5."""
    inputs = keras.Input((size, size, 1))
    conv = keras.layers.Conv2D(1, 1, activation="sigmoid")
    model = keras.Model(inputs, conv(inputs))
    conv.set_weights([np.full((1, 1, 1, 1), 40.0, "float32"), np.array([-20.0], "float32")])
    return model


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    threshold_model(16).save(run / "best.keras")
    (run / "config.json").write_text(json.dumps({"task": "lung", "threshold": 0.5}))
    (run / "COMPLETED").write_text("{}")  # a finished run
    return run


def write_volume(path, affine, shape=(16, 16, 5), seed=0):
    rng = np.random.default_rng(seed)
    hu = np.full(shape, -1000, np.int16)  # air: window value 0
    hu[rng.random(shape) > 0.8] = 400  # bright voxels: window value 1
    nib.save(nib.Nifti1Image(hu, affine), str(path))
    return hu


# RAS, LPS (x and y flipped) and a permuted orientation (slices along the first axis).
AFFINES = {
    "RAS": np.diag([0.8, 0.8, 2.5, 1.0]),
    "LPS": np.diag([-0.8, -0.8, 2.5, 1.0]),
    "SRA": np.array([[0, 0, 0.8, 0], [0, 0.8, 0, 0], [2.5, 0, 0, 0], [0, 0, 0, 1.0]]),
}


@pytest.mark.parametrize("orientation", list(AFFINES))
def test_mask_has_the_inputs_shape_affine_and_orientation(run_dir, tmp_path, orientation):
    affine = AFFINES[orientation]
    shape = (5, 16, 16) if orientation == "SRA" else (16, 16, 5)
    hu = write_volume(tmp_path / "ct.nii.gz", affine, shape)
    row = load_predictor(run_dir).predict_file(tmp_path / "ct.nii.gz", tmp_path / "out", probabilities=True)
    mask_img = nib.load(row["mask"])
    assert mask_img.shape == hu.shape
    np.testing.assert_allclose(mask_img.affine, affine)
    assert nib.aff2axcodes(mask_img.affine) == nib.aff2axcodes(affine)
    # The threshold model reproduces the bright voxels exactly, wherever the axes point.
    np.testing.assert_array_equal(np.asarray(mask_img.dataobj), (hu == 400).astype(np.uint8))
    probs = np.asarray(nib.load(row["probabilities"]).dataobj)
    assert probs.min() >= 0 and probs.max() <= 1
    assert row["voxels"] == int((hu == 400).sum())


def test_summary_volume_and_components():
    mask = np.zeros((10, 10, 4), np.uint8)
    mask[1:3, 1:3, 0:2] = 1  # 8 voxels
    mask[6:8, 6:9, 3] = 1  # 6 voxels, separate
    summary = summarize(mask, (0.5, 0.5, 2.0))
    assert summary == {"voxels": 14, "volume_ml": pytest.approx(14 * 0.5 / 1000), "components": 2}


def test_predict_cli_reports_bad_inputs_and_still_writes_the_others(run_dir, tmp_path, capsys):
    write_volume(tmp_path / "good.nii.gz", AFFINES["RAS"])
    (tmp_path / "bad.nii.gz").write_bytes(b"not a nifti")
    write_volume(tmp_path / "small.nii.gz", AFFINES["RAS"], shape=(8, 8, 3))
    status = predict.main(
        ["--model", str(run_dir), "--input", str(tmp_path / "good.nii.gz"), str(tmp_path / "bad.nii.gz"),
         str(tmp_path / "small.nii.gz"), "--out", str(tmp_path / "out")]
    )
    err = capsys.readouterr().err
    assert status == 2  # an input failed: exit status 2, one error line per failed input
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and "Traceback" not in err
    assert "bad.nii.gz" in errors[0] and "cannot read NIfTI header" in errors[0]
    assert "small.nii.gz" in errors[1] and "smaller than the model input 16x16" in errors[1]
    assert (tmp_path / "out" / "good_mask.nii.gz").exists()
    assert (tmp_path / "out" / "summary.csv").read_text().count("\n") == 2  # header + one row


def test_keras_file_without_config_needs_a_task(tmp_path):
    threshold_model(16).save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="no config.json beside the model says its task; pass --task"):
        load_predictor(tmp_path / "m.keras")
    assert load_predictor(tmp_path / "m.keras", task="liver").task == "liver"


def test_hippocampus_volume_is_cropped_back(tmp_path):
    run = tmp_path / "hip"
    run.mkdir()
    threshold_model(16).save(run / "best.keras")
    (run / "config.json").write_text(json.dumps({"task": "hippocampus", "max_intensity": 1.0, "clip_percentile": 100}))
    (run / "COMPLETED").write_text("{}")  # a finished run
    vol = np.zeros((9, 12, 4), np.float32)
    vol[2:5, 3:9, 1] = 10.0
    result = load_predictor(run).predict_volume(vol)
    assert result.mask.shape == vol.shape
    np.testing.assert_array_equal(result.mask, (vol > 5).astype(np.uint8))
