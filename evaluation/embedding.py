"""PCA of learned embeddings with 2-standard-deviation ellipses (Baltatzis et al. 2021, Fig. 2).

The PCA is fitted on the training embeddings only and applied to the test embeddings, so all
sets share one 2-D frame: a test cloud that lands on the wrong class's training cloud shows
the shift that makes the classifier fail.
"""

from __future__ import annotations

import numpy as np


def fit_pca(x, n_components: int = 2):
    """``sklearn.decomposition.PCA`` fitted on ``x`` (n >= 2, d); its signs are deterministic
    (scikit-learn's ``svd_flip``), so plots are repeatable."""
    from sklearn.decomposition import PCA

    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"fit_pca: expected (n >= 2, d) data; received shape {x.shape}")
    return PCA(n_components=min(n_components, *x.shape)).fit(x)


def ellipse_params(points, n_std: float = 2.0) -> tuple[np.ndarray, float, float, float]:
    """Centre, width, height and angle (degrees) of the ``n_std`` ellipse of 2-D ``points``.

    Width and height are full axis lengths, 2 * n_std * sqrt(eigenvalue of the covariance).
    """
    p = np.asarray(points, np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or p.shape[0] < 2:
        raise ValueError(f"ellipse_params: expected (n >= 2, 2) points; received shape {p.shape}")
    cov = np.cov(p, rowvar=False)
    vals, vecs = np.linalg.eigh(cov)  # ascending
    vals = np.maximum(vals, 0.0)
    major = vecs[:, 1]
    angle = float(np.degrees(np.arctan2(major[1], major[0])))
    return (
        p.mean(axis=0),
        2 * n_std * float(np.sqrt(vals[1])),
        2 * n_std * float(np.sqrt(vals[0])),
        angle,
    )


# (malignant, benign) colours: dark for the training set, light for the test sets.
TRAIN_COLOURS = ("#b2182b", "#2166ac")
TEST_COLOURS = (("#f4a582", "#92c5de"), ("#fddbc7", "#d1e5f0"))


def plot_embedding(ax, train, tests, title: str = "", n_std: float = 2.0):
    """Draw one panel of Fig. 2 on matplotlib axes ``ax``.

    Args:
        train: ``(embeddings (n, d), labels (n,), name)`` of the training set.
        tests: list of the same for each test set.
    Returns the fitted ``sklearn.decomposition.PCA``.
    """
    from matplotlib.patches import Ellipse

    pca = fit_pca(train[0], 2)
    sets = [(train, TRAIN_COLOURS, 0.9)] + [
        (t, TEST_COLOURS[min(k, len(TEST_COLOURS) - 1)], 0.7) for k, t in enumerate(tests)
    ]
    for (emb, labels, name), colours, alpha in sets:
        z = pca.transform(emb)
        labels = np.asarray(labels).reshape(-1)
        for cls, marker, colour, cname in (
            (1, "x", colours[0], "mal"),
            (0, "o", colours[1], "ben"),
        ):
            pts = z[labels == cls]
            if len(pts) == 0:
                continue
            # 'x' is a line marker (its colour is the edge); 'o' is drawn hollow.
            style = (
                {"color": colour} if marker == "x" else {"facecolors": "none", "edgecolors": colour}
            )
            ax.scatter(
                pts[:, 0],
                pts[:, 1],
                marker=marker,
                s=12,
                linewidths=0.8,
                alpha=alpha,
                label=f"{name} {cname}",
                **style,
            )
            if len(pts) >= 2:
                centre, w, h, angle = ellipse_params(pts, n_std)
                ax.add_patch(Ellipse(centre, w, h, angle=angle, fill=False, color=colour, lw=1.5))
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("PC 1", fontsize=8)
    ax.set_ylabel("PC 2", fontsize=8)
    ax.tick_params(labelsize=7)
    return pca


def embedding_figure(panels, n_cols: int = 3):
    """Fig. 2: one panel per model. ``panels``: list of ``(title, train, tests)``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows = int(np.ceil(len(panels) / n_cols))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.2 * n_cols, 3.8 * n_rows), squeeze=False)
    for ax, (title, train, tests) in zip(axes.flat, panels, strict=False):
        plot_embedding(ax, train, tests, title)
        ax.legend(fontsize=6, loc="best", markerscale=1.2)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    return fig
