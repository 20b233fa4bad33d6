"""Sample-quality metrics on feature vectors and class probabilities: FID, precision/recall, balance, confidence, IS.

Every function is a pure function of arrays (features (N, F), probabilities (N, C)), so each can be
checked against a hand-computed case. FID follows the reference implementations (TTUR's fid.py,
pytorch-fid): float64 statistics, scipy's matrix square root, an eps*I offset when the product of
covariances is singular, and the imaginary part dropped when it is numerical noise.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy import linalg

from udlcli.errors import DataError

# A class share outside [0.4/C, 1.6/C] (4%-16% for 10 classes) marks a set as unbalanced; the same band
# the VAE and GAN quality bars use.
BALANCE_BAND = (0.4, 1.6)


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (F,) and unbiased covariance (F, F) of features (N, F), in float64; needs N >= 2."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise DataError(
            f"FID needs at least 2 feature vectors, got {len(f) if f.ndim == 2 else f.shape}"
        )
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)): the Frechet distance of two Gaussians.

    As in pytorch-fid: if the square root is not finite (a singular product, e.g. fewer samples
    than features) eps is added to both diagonals; a complex result whose diagonal has an imaginary
    part above 1e-3 is a real failure, anything smaller is rounding and is dropped.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", linalg.LinAlgWarning
        )  # a singular product is handled below, as in pytorch-fid
        covmean = linalg.sqrtm(s1.dot(s2))
        if not np.isfinite(covmean).all():
            offset = np.eye(s1.shape[0]) * eps
            covmean = linalg.sqrtm((s1 + offset).dot(s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            m = float(np.max(np.abs(covmean.imag)))
            raise DataError(
                f"FID: the covariance square root has an imaginary component of {m:.3g}; the feature sets are degenerate (use more images)"
            )
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two sets of features (Na, F) and (Nb, F)."""
    return frechet_distance(*gaussian_stats(features_a), *gaussian_stats(features_b))


def manifold_radii(x: np.ndarray, k: int = 3, chunk: int = 1024) -> np.ndarray:
    """Distance from each row of x (N, F) to its k-th nearest other row: (N,), the radii of its k-NN manifold."""
    t = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    if len(t) <= k:
        raise DataError(
            f"precision/recall with k={k} needs more than {k} images per set, got {len(t)}"
        )
    out = []
    for i in range(0, len(t), chunk):
        d = torch.cdist(
            t[i : i + chunk], t
        )  # (chunk, N); each row's own distance 0 is its 1st neighbour
        out.append(d.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(out).numpy()


def _coverage(points: np.ndarray, centres: np.ndarray, radii: np.ndarray, chunk: int) -> float:
    """Share of points (M, F) inside at least one ball (centres (N, F), radii (N,))."""
    p, c, r = (
        torch.as_tensor(np.asarray(a), dtype=torch.float64) for a in (points, centres, radii)
    )
    inside = 0
    for i in range(0, len(p), chunk):
        d = torch.cdist(p[i : i + chunk], c)  # (chunk, N)
        inside += int((d <= r[None, :]).any(dim=1).sum())
    return inside / len(p)


def precision_recall(
    real: np.ndarray,
    fake: np.ndarray,
    k: int = 3,
    chunk: int = 1024,
    real_radii: np.ndarray | None = None,
) -> tuple[float, float]:
    """k-NN manifold precision and recall (Kynkaanniemi et al., 2019).

    Each set's manifold is the union of balls around its points reaching their k-th nearest
    neighbour. Precision: share of fake points on the real manifold (are samples realistic?).
    Recall: share of real points on the fake manifold (do samples cover the data?).
    real_radii (from manifold_radii(real, k)) saves recomputing them when many sets meet one real set.
    """
    r_radii = manifold_radii(real, k, chunk) if real_radii is None else real_radii
    f_radii = manifold_radii(fake, k, chunk)
    return _coverage(fake, real, r_radii, chunk), _coverage(real, fake, f_radii, chunk)


def class_balance(probs: np.ndarray) -> dict:
    """Histogram of predicted classes (argmax of probs (N, C)): shares, extremes and KL from uniform."""
    p = np.asarray(probs)
    n_classes = p.shape[1]
    counts = np.bincount(p.argmax(axis=1), minlength=n_classes)
    shares = counts / counts.sum()
    nz = shares > 0  # 0 * log 0 = 0
    kl = float(np.sum(shares[nz] * np.log(shares[nz] * n_classes)))
    lo, hi = BALANCE_BAND
    return {
        "counts": counts.tolist(),
        "shares": shares.tolist(),
        "max_share": float(shares.max()),
        "max_class": int(shares.argmax()),
        "min_share": float(shares.min()),
        "min_class": int(shares.argmin()),
        "kl_uniform": kl,
        "balanced": bool(shares.min() >= lo / n_classes and shares.max() <= hi / n_classes),
    }


def confidence(probs: np.ndarray) -> float:
    """Mean max-softmax: how sure the classifier is that a sample is some class.

    With the feature network's reject output the rows sum to 1 - P(not data), so noise scores near 0.
    """
    return float(np.asarray(probs).max(axis=1).mean())


def inception_score(probs: np.ndarray, eps: float = 1e-12) -> float:
    """exp E_x[KL(p(y|x) || p(y))] with p(y) the mean of p(y|x): from 1 (useless) to C (sharp and balanced).

    Rows that do not sum to 1 (the data classes' share under a reject output) are renormalised to p(y|x, data).
    """
    p = np.asarray(probs, dtype=np.float64)
    p = p / np.maximum(p.sum(axis=1, keepdims=True), 1e-300)
    py = p.mean(axis=0, keepdims=True)
    kl = np.sum(p * (np.log(p + eps) - np.log(py + eps)), axis=1)
    return float(np.exp(kl.mean()))


def all_metrics(
    real_features: np.ndarray,
    features: np.ndarray,
    probs: np.ndarray,
    k: int = 3,
    real_radii: np.ndarray | None = None,
) -> dict:
    """Every metric of one sample set (features (N, F), probs (N, C)) against the real features."""
    precision, recall = precision_recall(real_features, features, k=k, real_radii=real_radii)
    return {
        "n": int(len(features)),
        "fid": fid(features, real_features),
        "precision": precision,
        "recall": recall,
        "inception_score": inception_score(probs),
        "confidence": confidence(probs),
        "balance": class_balance(probs),
    }


def knn_accuracy(
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    queries: torch.Tensor,
    labels: torch.Tensor,
    k: int = 200,
    temperature: float = 0.1,
    chunk: int = 1024,
) -> float:
    """Weighted k-NN accuracy on cosine similarity, as lightly and solo-learn monitor self-supervised features.

    Each query's k most similar bank features vote for their labels with weight exp(similarity /
    temperature) (Wu et al. 2018); the top vote is the prediction. bank (N, F), queries (M, F).
    """
    classes = int(max(bank_labels.max(), labels.max() if len(labels) else 0)) + 1
    b = torch.nn.functional.normalize(bank.float(), dim=1)
    onehot = torch.nn.functional.one_hot(bank_labels.long(), classes).float()  # (N, classes)
    k = min(k, len(b))
    right = 0
    for i in range(0, len(queries), chunk):
        q = torch.nn.functional.normalize(queries[i : i + chunk].float(), dim=1)
        sim, idx = (q @ b.T).topk(k, dim=1)  # (m, k)
        votes = (onehot[idx] * (sim / temperature).exp().unsqueeze(2)).sum(1)  # (m, classes)
        right += int((votes.argmax(1) == labels[i : i + chunk].to(votes.device)).sum())
    return right / max(len(queries), 1)


def linear_probe(train: np.ndarray, train_labels, test: np.ndarray, test_labels) -> float:
    """Test accuracy of a logistic regression on frozen features (standardised first, so lbfgs converges): the linear probe."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    probe.fit(np.asarray(train, dtype=np.float64), np.asarray(train_labels))
    return float(
        (probe.predict(np.asarray(test, dtype=np.float64)) == np.asarray(test_labels)).mean()
    )
