"""Many small linear probes fitted as one batched problem in torch (on the run's device).

The same objectives scikit-learn minimises in `qlf.probes` (C = 100, intercepts unpenalised):

    binary       sum_i w_i·logloss(y_i, x_i·v + b) + ||v||² / (2C)          K independent columns
    multinomial  sum_i w_i·(-log softmax(x_i V^T + b)[c_i]) + ||V||_F² / (2C)   (K classes)
    least squares  OLS on centred data, minimum-norm solution (LinearRegression)

Problems are stacked along a leading axis P and padded to a common m with example weights w_i = 0,
so every probe of a feature (all layers, all rows) is one call. Logistic problems are solved by
Newton's method with the exact Hessian (d+1 or K·(d+1) unknowns per problem, small next to the
examples), a backtracking line search on the exact objective, and a stop when the Newton decrement
is below `tol` per example: it converges to the optimum that sklearn's L-BFGS approaches (the
agreement is tested in tests/test_monitor.py). The sums over examples (scores, gradients, Hessians)
run in `dtype`; the objective, the Newton solves and the parameters are float64. No randomness.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

EPS64 = 2.220446049250313e-16  # float64 eps: the clip of qlf.probes._log_losses
STEPS = tuple(0.5 ** k for k in range(21))  # line-search step sizes tried, largest first


def _append_ones(X: torch.Tensor) -> torch.Tensor:
    return torch.cat([X, torch.ones_like(X[..., :1])], dim=-1)


def _check(X: torch.Tensor, weight: torch.Tensor) -> None:
    if X.ndim != 3 or weight.shape != X.shape[:2]:
        raise ValueError(f"X must be (P, m, d) and weight (P, m); got {tuple(X.shape)}, "
                         f"{tuple(weight.shape)}")
    if not torch.isfinite(X).all():
        raise ValueError("probe activations contain NaN or inf")


def _solve_spd(H: torch.Tensor, g: torch.Tensor, todo: torch.Tensor) -> torch.Tensor:
    """H^{-1} g for a batch of symmetric positive (semi)definite H (float64), by Cholesky, for the
    problems still to do (the others, whose H may be singular, get a dummy identity). A problem
    whose H is not numerically positive definite (separable data: the unpenalised intercept's
    curvature underflows) gets a growing diagonal jitter; H + scale*I is always positive
    definite, and the line search keeps any such direction a descent."""
    eye = torch.eye(H.shape[-1], dtype=H.dtype, device=H.device)
    H = torch.where(todo[:, None, None], H, eye)
    scale = H.diagonal(dim1=-2, dim2=-1).abs().mean(-1).clamp(min=1.0)
    for jitter in (0.0, 1e-12, 1e-10, 1e-8, 1e-6, 1e-4, 1e-2, 1.0):
        L, info = torch.linalg.cholesky_ex(H + (jitter * scale)[:, None, None] * eye)
        if not bool((info > 0).any()):
            return torch.cholesky_solve(g.unsqueeze(-1), L).squeeze(-1)
    raise FloatingPointError("probe Hessian is not positive semidefinite (NaN activations?)")


def fit_binary(X: torch.Tensor, Y: torch.Tensor, weight: torch.Tensor, active: torch.Tensor,
               C: float = 100.0, max_iter: int = 100, tol: float = 1e-10,
               dtype: torch.dtype = torch.float64):
    """L2 logistic regression, K label columns per example set, all problems at once.

    X (P, m, d); Y (P, m, K) 0/1; weight (P, m) 0/1 (0 = padding); active (P, K) bool (inactive
    columns are left at 0). Returns W (P, K, d), b (P, K) float64, n_iter (P, K) int64,
    converged (P, K) bool.
    """
    _check(X, weight)
    P, m, d = X.shape
    K = Y.shape[-1]
    Xa = _append_ones(X.to(dtype))
    Y, w = Y.to(dtype), weight.to(dtype)
    pen = torch.full((d + 1,), 1.0 / C, dtype=torch.float64, device=X.device)
    pen[-1] = 0.0  # the intercept is not penalised (sklearn)
    theta = torch.zeros(P, K, d + 1, dtype=torch.float64, device=X.device)
    todo = active.clone()
    n_iter = torch.zeros(P, K, dtype=torch.int64, device=X.device)
    n_ex = w.sum(1).clamp(min=1.0)[:, None].to(torch.float64)

    w64, Y64 = w.to(torch.float64)[..., None], Y.to(torch.float64)

    def objective(z, th):  # float64: float32 sums are too coarse for the line search's test
        z = z.to(torch.float64)
        return (w64 * (F.softplus(z) - Y64 * z)).sum(1) + 0.5 * (th[..., :d] ** 2).sum(-1) / C

    for _ in range(max_iter):
        if not bool(todo.any()):
            break
        z = torch.bmm(Xa, theta.to(dtype).transpose(1, 2))  # (P, m, K)
        p = torch.sigmoid(z)
        f = objective(z, theta)
        g = torch.bmm(Xa.transpose(1, 2), w[..., None] * (p - Y)).transpose(1, 2)
        g = g.to(torch.float64) + pen * theta  # (P, K, d+1)
        s = w[..., None] * p * (1 - p)
        H = torch.stack([torch.bmm(Xa.transpose(1, 2), Xa * s[..., k:k + 1])
                         for k in range(K)], 1).to(torch.float64) + torch.diag(pen)
        step = -_solve_spd(H.reshape(P * K, d + 1, d + 1), g.reshape(P * K, d + 1),
                           todo.reshape(P * K))
        step = step.reshape(P, K, d + 1)
        decrement = -(g * step).sum(-1)  # Newton decrement squared, >= 0
        todo &= ~(decrement / 2 <= tol * n_ex)
        if not bool(todo.any()):
            break
        dz = torch.bmm(Xa, step.to(dtype).transpose(1, 2))
        t = _line_search(lambda tt: objective(z + tt * dz, theta + tt * step), f, decrement,
                         todo)
        theta = torch.where(todo[..., None], theta + t[..., None] * step, theta)
        n_iter += todo.long()
    converged = active & ~todo
    n_iter = torch.where(converged | ~active, n_iter, torch.full_like(n_iter, max_iter))
    return theta[..., :d], theta[..., d], n_iter, converged


def _line_search(value_at, f0: torch.Tensor, decrement: torch.Tensor,
                 todo: torch.Tensor) -> torch.Tensor:
    """Per problem still to do, the largest step in STEPS with Armijo's sufficient decrease (the
    smallest step when none has it)."""
    t = torch.full_like(f0, STEPS[-1])
    found = ~todo
    for step in STEPS:
        ok = ~found & (value_at(step) <= f0 - 1e-4 * step * decrement)
        t = torch.where(ok, torch.full_like(t, step), t)
        found |= ok
        if bool(found.all()):
            break
    return t


def fit_multinomial(X: torch.Tensor, c: torch.Tensor, weight: torch.Tensor,
                    present: torch.Tensor, C: float = 100.0, max_iter: int = 100,
                    tol: float = 1e-10, dtype: torch.dtype = torch.float64):
    """Multinomial L2 logistic regression over the classes in `present`, all problems at once.

    X (P, m, d); c (P, m) class index in 0..K-1 (any value where weight is 0); weight (P, m);
    present (P, K) bool: the classes of each problem (sklearn: those seen in train, >= 2).
    Returns W (P, K, d), b (P, K) float64 (absent classes 0), n_iter (P,), converged (P,).
    """
    _check(X, weight)
    P, m, d = X.shape
    K = present.shape[1]
    if bool((present.sum(1) < 2).any()):
        raise ValueError("every multinomial problem needs at least two classes")
    D = d + 1
    Xa = _append_ones(X.to(dtype))
    w = weight.to(dtype)
    Y = F.one_hot(c.long().clamp(0, K - 1), K).to(dtype) * (w > 0)[..., None]
    pen = torch.full((D,), 1.0 / C, dtype=torch.float64, device=X.device)
    pen[-1] = 0.0
    pen_all = (present[..., None].to(torch.float64) * pen).reshape(P, K * D)
    absent = (~present)[..., None].expand(P, K, D).reshape(P, K * D)
    theta = torch.zeros(P, K, D, dtype=torch.float64, device=X.device)
    todo = torch.ones(P, dtype=torch.bool, device=X.device)
    n_iter = torch.zeros(P, dtype=torch.int64, device=X.device)
    n_ex = w.sum(1).clamp(min=1.0).to(torch.float64)
    mask = torch.where(present, 0.0, -math.inf).to(dtype)[:, None, :]

    index = c.long().clamp(0, K - 1)[..., None]

    w64 = w.to(torch.float64)

    def objective(z, th):  # float64, as in fit_binary
        z = z.to(torch.float64)
        nll = torch.logsumexp(z, -1) - z.gather(-1, index).squeeze(-1)
        loss = torch.where(w64 > 0, w64 * nll, 0.0).sum(1)  # padding may be an absent class
        return loss + 0.5 * (th[..., :d] ** 2).sum((-1, -2)) / C

    for _ in range(max_iter):
        if not bool(todo.any()):
            break
        z = torch.bmm(Xa, theta.to(dtype).transpose(1, 2)) + mask  # (P, m, K)
        p = torch.softmax(z, -1)
        f = objective(z, theta)
        g = torch.bmm(Xa.transpose(1, 2), w[..., None] * (p - Y)).transpose(1, 2)
        g = g.to(torch.float64).reshape(P, K * D) + pen_all * theta.reshape(P, K * D)
        g = torch.where(absent, 0.0, g)
        H = torch.zeros(P, K, D, K, D, dtype=torch.float64, device=X.device)
        for k in range(K):
            for j in range(k, K):
                s = w * p[..., k] * (float(k == j) - p[..., j])
                block = torch.bmm(Xa.transpose(1, 2), Xa * s[..., None]).to(torch.float64)
                H[:, k, :, j] = block
                if j != k:
                    H[:, j, :, k] = block.transpose(1, 2)
        H = H.reshape(P, K * D, K * D)
        H = H + torch.diag_embed(pen_all + absent.to(torch.float64))  # absent classes: identity
        step = -_solve_spd(H, g, todo)
        decrement = -(g * step).sum(-1)
        todo &= ~(decrement / 2 <= tol * n_ex)
        if not bool(todo.any()):
            break
        step = step.reshape(P, K, D)
        dz = torch.bmm(Xa, step.to(dtype).transpose(1, 2))
        t = _line_search(lambda tt: objective(z + tt * dz, theta + tt * step), f, decrement,
                         todo)
        theta = torch.where(todo[:, None, None], theta + t[:, None, None] * step, theta)
        n_iter += todo.long()
    n_iter = torch.where(todo, torch.full_like(n_iter, max_iter), n_iter)
    return theta[..., :d], theta[..., d], n_iter, ~todo


def fit_least_squares(X: torch.Tensor, y: torch.Tensor, weight: torch.Tensor,
                      rcond: float = 1e-10):
    """Ordinary least squares with an intercept (LinearRegression), all problems at once.

    X (P, m, d); y (P, m); weight (P, m) 0/1. The minimum-norm solution: eigenvalues of the
    centred Gram matrix below rcond x the largest are treated as zero (a constant direction, as
    lstsq would). Returns W (P, d), b (P,) float64.
    """
    _check(X, weight)
    X, y, w = X.to(torch.float64), y.to(torch.float64), weight.to(torch.float64)
    n = w.sum(1).clamp(min=1.0)
    mx = (w[..., None] * X).sum(1) / n[:, None]
    my = (w * y).sum(1) / n
    Xc = (X - mx[:, None]) * w[..., None]
    G = torch.bmm(Xc.transpose(1, 2), Xc)
    r = torch.bmm(Xc.transpose(1, 2), ((y - my[:, None]) * w)[..., None]).squeeze(-1)
    vals, vecs = torch.linalg.eigh(G)
    keep = vals > rcond * vals[:, -1:].clamp(min=0)
    inv = torch.where(keep, 1.0 / torch.where(keep, vals, 1.0), 0.0)
    W = torch.bmm(vecs * inv[:, None, :], torch.bmm(vecs.transpose(1, 2), r[..., None]))
    W = W.squeeze(-1)
    return W, my - (W * mx).sum(-1)


# -- per-example losses of fitted probes (the clip of qlf.probes._log_losses) --------------------

def binary_losses(X, Y, W, b):
    """Per-example log loss and correctness of K binary columns: X (P, m, d), Y (P, m, K),
    W (P, K, d), b (P, K) -> (loss (P, m, K) float64, correct (P, m, K) bool)."""
    z = (torch.bmm(X.to(torch.float64), W.transpose(1, 2)) + b[:, None, :])
    p1 = torch.sigmoid(z)
    y = Y.to(torch.float64)
    p_true = torch.where(y > 0.5, p1, 1 - p1)
    return -torch.log(p_true.clamp(EPS64, 1 - EPS64)), (z > 0) == (y > 0.5)


def multinomial_losses(X, c, W, b, present):
    """Per-example log loss and correctness: X (P, m, d), c (P, m) true class index, W (P, K, d),
    b (P, K), present (P, K) -> (loss (P, m), correct (P, m)). A true class outside `present`
    has probability 0, clipped to eps (qlf.probes)."""
    z = torch.bmm(X.to(torch.float64), W.transpose(1, 2)) + b[:, None, :]
    z = z.masked_fill(~present[:, None, :], -math.inf)
    proba = torch.softmax(z, -1)
    c = c.long().clamp(0, present.shape[1] - 1)
    p_true = proba.gather(-1, c[..., None]).squeeze(-1)
    return -torch.log(p_true.clamp(EPS64, 1 - EPS64)), z.argmax(-1) == c


def squared_errors(X, y, W, b):
    """(P, m) squared errors of least-squares probes W (P, d), b (P,)."""
    pred = torch.bmm(X.to(torch.float64), W[..., None]).squeeze(-1) + b[:, None]
    return (pred - y.to(torch.float64)) ** 2
