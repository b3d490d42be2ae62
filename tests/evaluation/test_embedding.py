"""PCA and 2-sd ellipses of Fig. 2 against an eigendecomposition and a known covariance."""

import numpy as np
import pytest

from evaluation.embedding import ellipse_params, embedding_figure, fit_pca


def test_pca_matches_covariance_eigendecomposition():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6)) @ rng.normal(size=(6, 6))
    pca = fit_pca(x, 2)
    vals, vecs = np.linalg.eigh(np.cov(x, rowvar=False))  # ascending
    top = vecs[:, ::-1][:, :2].T
    np.testing.assert_allclose(pca.explained_variance_, vals[::-1][:2], rtol=1e-8)
    np.testing.assert_allclose(np.abs(pca.components_), np.abs(top), atol=1e-8)
    np.testing.assert_allclose(np.abs(pca.transform(x)), np.abs((x - x.mean(0)) @ top.T), atol=1e-8)
    with pytest.raises(ValueError, match=r"\(n >= 2, d\)"):
        fit_pca(np.zeros((1, 3)))


def test_two_sd_ellipse_of_a_known_covariance():
    rng = np.random.default_rng(1)
    # Standard deviations 3 along (1, 1)/sqrt(2) and 1 across it, mean (5, -2).
    z = rng.normal(size=(20000, 2)) * [3.0, 1.0]
    rot = np.array([[1, -1], [1, 1]]) / np.sqrt(2)
    pts = z @ rot.T + [5.0, -2.0]
    centre, width, height, angle = ellipse_params(pts, n_std=2.0)
    np.testing.assert_allclose(centre, [5.0, -2.0], atol=0.05)
    assert width == pytest.approx(2 * 2 * 3.0, rel=0.02)
    assert height == pytest.approx(2 * 2 * 1.0, rel=0.02)
    assert angle % 180 == pytest.approx(45.0, abs=1.0)


def test_figure_draws_train_and_test_sets():
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(20, 5))
    labels = np.arange(20) % 2
    fig = embedding_figure(
        [("model", (emb, labels, "train"), [(emb + 1, labels, "test")])], n_cols=1
    )
    ax = fig.axes[0]
    assert len(ax.collections) == 4  # mal/ben x train/test
    assert len(ax.patches) == 4  # one ellipse each
    with pytest.raises(ValueError, match=r"\(n >= 2, 2\)"):
        ellipse_params(np.zeros((1, 2)))
