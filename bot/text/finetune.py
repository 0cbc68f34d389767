"""Folding a press office's corrections into the built-in model (`otklik train`), in seconds.

Refitting on the whole corpus takes minutes; instead the built-in weights are the prior. For
each head we minimise, over the corrections only,

    Σ_i weight · logloss(z0_i + x_i·Δ + δ) + (||Δ||² + ||δ||²) / (2·C)

where z0 is the built-in model's score and C the head's regularisation chosen when the built-in
model was trained: the built-in model (which carries the corpus) changes only as far as the
corrections demand. Words that only the corrections contain join the vocabulary. Deterministic:
the same corrections give the same weights and the same file bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from bot.text.classifier import TOPICS, Analysis
from bot.text.corpus import Example
from bot.text.embeddings import DIM
from bot.text.features import DENSE_NAMES
from bot.text.linear import HEADS, LinearModel

__all__ = ["fine_tune"]

Array = npt.NDArray[np.float64]
# The intercepts stay where the corpus put them (a huge penalty on moving them).
_FROZEN = 1e6
# A person's decision on a text of the region is strong evidence: the words' weights may move
# this many times more freely than the corpus fit allowed.
_FREEDOM = 20.0


def _inputs(model: LinearModel, analyses: Sequence[Analysis]) -> Any:
    """Input rows [sparse | dense | embedding] (scipy CSR) as LinearModel.scores builds them."""
    from scipy import sparse as sp

    rows, cols, values = [], [], []
    for row, analysis in enumerate(analyses):
        ids = model.sparse_ids(analysis.features)
        rows.extend([row] * len(ids))
        cols.extend(ids)
        values.extend([1.0 / np.sqrt(len(ids))] * len(ids))
    shape = (len(analyses), len(model.vocabulary))
    dense = np.array([model.dense_input(a.features.dense) for a in analyses]).reshape(
        len(analyses), len(DENSE_NAMES)
    )
    embedding = np.array([a.features.embedding * model.emb_scale for a in analyses]).reshape(
        len(analyses), DIM
    )
    return sp.hstack(
        [
            sp.csr_matrix((values, (rows, cols)), shape=shape),
            sp.csr_matrix(dense),
            sp.csr_matrix(embedding),
        ],
        format="csr",
    )


def _fit_delta(x: Any, base: Array, targets: Array, weight: float, c: float) -> tuple[Array, Array]:
    """Minimise the weighted softmax/logistic loss around base scores; (ΔW, Δb).

    targets: one-hot rows (k ≥ 2 columns: softmax) or a 0/1 column (k = 1: logistic).
    """
    from scipy.optimize import minimize
    from scipy.special import expit

    n, features = x.shape
    heads = targets.shape[1]

    def loss(flat: Array) -> tuple[float, Array]:
        delta = flat[: features * heads].reshape(features, heads)
        bias = flat[features * heads :]
        z = base + x @ delta + bias
        if heads == 1:
            # expit, not 1/(1+exp(-z)): the line search tries steps where |z| is in the
            # hundreds, and exp overflows there (the limit is right, the warning is not).
            p = expit(z)
            value = np.logaddexp(0.0, z) - targets * z
            residual = p - targets
        else:
            shifted = z - z.max(axis=1, keepdims=True)
            log_norm = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            log_p = shifted - log_norm
            value = -(targets * log_p).sum(axis=1, keepdims=True)
            residual = np.exp(log_p) - targets
        # The intercepts are pulled to the prior too: corrections of one kind only (all
        # «appeal») must not move every other text's decision.
        penalty = float((delta**2).sum()) / (2 * c) + float((bias**2).sum()) * _FROZEN
        total = weight * float(value.sum()) + penalty
        grad_w = weight * np.asarray(x.T @ residual) + delta / c
        grad_b = weight * residual.sum(axis=0) + 2 * _FROZEN * bias
        return total, np.concatenate([grad_w.ravel(), grad_b])

    start = np.zeros(features * heads + heads)
    if n == 0:
        return start[: features * heads].reshape(features, heads), start[features * heads :]
    result = minimize(loss, start, jac=True, method="L-BFGS-B", options={"maxiter": 200})
    flat = result.x
    return flat[: features * heads].reshape(features, heads), flat[features * heads :]


def fine_tune(
    base: LinearModel,
    analyse: Callable[[Sequence[Example]], list[Analysis]],
    corrections: Sequence[Example],
    hyper: Any,
    weight: float,
) -> LinearModel:
    """The built-in model moved towards the corrections (see the module docstring)."""
    analyses = analyse(corrections)
    new_names = sorted(
        {name for a in analyses for name in a.features.sparse} - set(base.vocabulary)
    )
    vocabulary = sorted([*base.vocabulary, *new_names])
    position = {name: number for number, name in enumerate(vocabulary)}
    sparse = np.zeros((len(vocabulary), HEADS), np.float64)
    sparse[[position[name] for name in base.vocabulary]] = base.sparse
    extended = LinearModel(
        vocabulary,
        sparse.astype(np.float32),
        base.dense,
        base.embedding,
        base.bias.astype(np.float32),
        base.dense_mean.astype(np.float32),
        base.dense_scale.astype(np.float32),
        base.emb_scale,
        base.appeal_shift,
        base.urgent_shift,
        base.danger_margin,
        base.appeal_temperature,
    )
    x = _inputs(extended, analyses)
    weights = np.concatenate([sparse, base.dense, base.embedding]).astype(np.float64)
    bias = base.bias.astype(np.float64).copy()
    z0 = x @ weights + bias
    appeals = [i for i, e in enumerate(corrections) if e.is_appeal]

    def apply(columns: slice, rows: list[int], targets: Array, c: float) -> None:
        # Only inputs some correction has can move (elsewhere the gradient is the prior's
        # alone, whose optimum is no change): a few hundred parameters instead of 20,000+.
        part = x[rows]
        active = np.flatnonzero(part.getnnz(axis=0) > 0)
        # Only the words' and n-grams' own weights move: the dense and navec weights are shared
        # by every text, and a handful of corrections must not shift all other decisions.
        active = active[active < len(vocabulary)]
        delta, delta_bias = _fit_delta(part[:, active], z0[rows][:, columns], targets, weight, c)
        block = weights[:, columns]
        block[active] += delta
        weights[:, columns] = block
        bias[columns] += delta_bias

    labels = np.array([[float(e.is_appeal)] for e in corrections]).reshape(-1, 1)
    apply(slice(0, 1), list(range(len(corrections))), labels, _FREEDOM * hyper.c_appeal)
    one_hot = np.zeros((len(appeals), len(TOPICS)))
    for row, i in enumerate(appeals):
        one_hot[row, TOPICS.index(corrections[i].topic or "other")] = 1.0
    apply(slice(1, 1 + len(TOPICS)), appeals, one_hot, _FREEDOM * hyper.c_topic)
    urgent = np.array([[float(corrections[i].urgent)] for i in appeals]).reshape(-1, 1)
    apply(slice(HEADS - 1, HEADS), appeals, urgent, _FREEDOM * hyper.c_urgent)
    vocab_size, dense_size = len(vocabulary), len(DENSE_NAMES)
    return LinearModel(
        vocabulary,
        weights[:vocab_size].astype(np.float32),
        weights[vocab_size : vocab_size + dense_size].astype(np.float32),
        weights[vocab_size + dense_size :].astype(np.float32),
        bias.astype(np.float32),
        base.dense_mean.astype(np.float32),
        base.dense_scale.astype(np.float32),
        base.emb_scale,
        base.appeal_shift,
        base.urgent_shift,
        base.danger_margin,
        base.appeal_temperature,
    )
