"""Image inference: one CSV row per readable image, uncertainty and ODIN flag for ISIC."""

import csv
import json

import cv2
import numpy as np
import pytest

import predict
from architectures.lenet import build_classifier
from architectures.vgg import build_vgg16_classifier
from inference import load_predictor

ISIC_CLASSES = ["MEL", "NV", "BCC", "AK", "DF"]


def write_images(folder, n, shape, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"img_{i}.png"
        cv2.imwrite(str(path), rng.integers(0, 256, shape, dtype=np.uint8))
        paths.append(path)
    return paths


@pytest.fixture
def isic_run(tmp_path):
    run = tmp_path / "isic"
    (run / "evaluation").mkdir(parents=True)
    model = build_vgg16_classifier((32, 32, 3), len(ISIC_CLASSES), loss_estimator=True, width=0.0625)
    model.save(run / "best.keras")
    (run / "config.json").write_text(json.dumps({"task": "isic", "classes": ISIC_CLASSES, "crop_fraction": 0.85, "sog_power": 6.0}))
    (run / "COMPLETED").write_text("{}")  # a finished run
    (run / "evaluation" / "metrics.json").write_text(
        json.dumps({"odin": {"temperature": 10.0, "epsilon": 0.001, "threshold": 0.3}})
    )
    return run


def test_isic_csv_has_one_row_per_image_with_uncertainty_and_odin(isic_run, tmp_path):
    paths = write_images(tmp_path / "photos", 3, (60, 80, 3))
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "photos" / "notes.txt").write_text("ignored: not an image suffix")
    status = predict.main(["--model", str(isic_run), "--input", str(tmp_path / "photos"), "--out", str(tmp_path / "out")])
    assert status == 2  # the broken image failed, the others were predicted
    with open(tmp_path / "out" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["image"] for r in rows) == sorted(str(p) for p in paths)
    for row in rows:
        probs = np.array([float(row[f"p_{c}"]) for c in ISIC_CLASSES])
        assert np.all((probs >= 0) & (probs <= 1)) and probs.sum() == pytest.approx(1, abs=1e-4)
        assert row["predicted"] == ISIC_CLASSES[int(np.argmax(probs))]
        assert np.isfinite(float(row["estimated_loss"]))
        assert row["out_of_distribution"] == str(float(row["odin_score"]) < 0.3)


def test_nodules_predictor_reads_grayscale_images(tmp_path):
    run = tmp_path / "nodules"
    run.mkdir()
    build_classifier(input_shape=(32, 32, 1)).save(run / "best.keras")
    (run / "config.json").write_text(json.dumps({"task": "nodules", "image_size": 32}))
    (run / "COMPLETED").write_text("{}")  # a finished run
    paths = write_images(tmp_path / "imgs", 2, (40, 40))
    (tmp_path / "bad.png").write_bytes(b"not a png")
    rows, failures = load_predictor(run).predict_images(
        paths + [tmp_path / "missing.png", tmp_path / "bad.png"]
    )
    assert len(rows) == 2 and len(failures) == 2 and "missing.png: file not found" in failures[0]
    assert "bad.png: not a readable image" in failures[1]
    assert set(rows[0]) == {"image", "p_benign", "p_malignant", "predicted"}
