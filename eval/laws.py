"""Scaling laws for planning continual pre-training: fit on small runs, predict the rest.

- Chinchilla (Hoffmann et al. 2022): L = E + A/N^alpha + B/D^beta; a known-answer check.
- D-CPT Law (Que et al. 2024): L(N, D, r) = E + A/N^alpha + B*r^eta/D^beta + C/(r+eps)^gamma, fitted
  separately for general loss (r = general share) and domain loss (r = domain share). With a single
  model size the A/N^alpha term is a constant and folds into E.
- CPT learning-dynamics law (Wang et al. 2025): L(t) = L0 + A*(S1_pt + S1_cpt)^-alpha - C1*S2_pt
  - C2*S2_cpt + B*(1 - (1 + E*S1_cpt)^-beta), with S1 the sum of learning rates and S2 the annealing
  area (momentum form, lambda 0.999). For a released model the pre-training schedule is unknown:
  S1_pt is fitted and C1*S2_pt folds into L0.

Fitting follows Chinchilla's appendix D.2: Huber loss (delta 1e-3) on log-loss, L-BFGS from a grid
of starting points, keep the best. scipy's L-BFGS-B is used rather than a hand-written optimiser.
Judge a D-CPT fit by its predictions, not its parameters: several are weakly identifiable.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HUBER_DELTA = 1e-3
CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def mean_abs_rel_error(predicted: Any, measured: Any) -> float:
    """Mean of |predicted - measured| / measured: how every fit and held-out prediction here is scored."""
    predicted, measured = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    return float(np.mean(np.abs(predicted - measured) / measured))


def huber(residual: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
    absolute = np.abs(residual)
    return np.where(absolute <= delta, 0.5 * residual**2, delta * (absolute - 0.5 * delta))


@dataclass
class Fit:
    """A fitted law: its parameters, the objective reached, and how well it describes its data."""

    names: tuple[str, ...]
    values: np.ndarray
    objective: float
    predict_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] = field(repr=False)
    r2: float = float("nan")
    mean_abs_rel_error: float = float("nan")

    @property
    def params(self) -> dict[str, float]:
        return {name: float(value) for name, value in zip(self.names, self.values, strict=True)}

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.predict_fn(self.values, np.asarray(x, dtype=float))


def _fit(
    names: tuple[str, ...],
    model: Callable[[np.ndarray, np.ndarray], np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    starts: Sequence[np.ndarray],
    bounds: Sequence[tuple[float | None, float | None]],
) -> Fit:
    """Huber on log-loss, L-BFGS-B from every start, best objective wins."""
    from scipy.optimize import minimize

    x = np.asarray(x, dtype=float)
    log_y = np.log(np.asarray(y, dtype=float))

    def objective(theta: np.ndarray) -> float:
        predicted = model(theta, x)
        if np.any(~np.isfinite(predicted)) or np.any(predicted <= 0):
            return 1e6
        return float(np.sum(huber(np.log(predicted) - log_y)))

    best = None
    for start in starts:
        result = minimize(objective, start, method="L-BFGS-B", bounds=bounds, options={"maxiter": 2000})
        if best is None or result.fun < best.fun:
            best = result
    assert best is not None
    fit = Fit(names, best.x, float(best.fun), model)
    predicted = fit.predict(x)
    y = np.asarray(y, dtype=float)
    fit.r2 = float(1 - np.sum((y - predicted) ** 2) / np.sum((y - y.mean()) ** 2))
    fit.mean_abs_rel_error = mean_abs_rel_error(predicted, y)
    return fit


# --- Chinchilla: x = [N, D] -------------------------------------------------------------------


def _chinchilla(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    e, a, b, alpha, beta = theta
    n, d = x[:, 0], x[:, 1]
    return np.exp(e) + np.exp(a - alpha * np.log(n)) + np.exp(b - beta * np.log(d))


def chinchilla_loss(n: np.ndarray, d: np.ndarray, p: dict[str, float] = CHINCHILLA) -> np.ndarray:
    return p["E"] + p["A"] / np.asarray(n, float) ** p["alpha"] + p["B"] / np.asarray(d, float) ** p["beta"]


def fit_chinchilla(n: np.ndarray, d: np.ndarray, loss: np.ndarray) -> dict[str, float]:
    """Fit L = E + A/N^alpha + B/D^beta (log-parametrised E, A, B, as in the paper)."""
    grid = itertools.product([-1.0, 0.5], [0.0, 5.0, 10.0], [0.0, 5.0, 10.0], [0.0, 0.5], [0.0, 0.5])
    fit = _fit(
        ("e", "a", "b", "alpha", "beta"),
        _chinchilla,
        np.column_stack([n, d]),
        loss,
        [np.array(s) for s in grid],
        [(-5, 5), (-5, 25), (-5, 25), (0, 2), (0, 2)],
    )
    e, a, b, alpha, beta = fit.values
    return {"E": float(np.exp(e)), "A": float(np.exp(a)), "B": float(np.exp(b)), "alpha": alpha, "beta": beta}


# --- D-CPT Law: x = [N, D, r] -------------------------------------------------------------------

DCPT_NAMES = ("e", "a", "alpha", "b", "eta", "beta", "c", "gamma", "log_eps")


def _dcpt(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    e, a, alpha, b, eta, beta, c, gamma, log_eps = theta
    n, d, r = x[:, 0], x[:, 1], x[:, 2]
    return (
        np.exp(e)
        + np.exp(a - alpha * np.log(n))
        + np.exp(b - beta * np.log(d)) * np.power(r, eta)
        + np.exp(c - gamma * np.log(r + np.exp(log_eps)))
    )


def dcpt_loss(n: np.ndarray, d: np.ndarray, r: np.ndarray, p: dict[str, float]) -> np.ndarray:
    """The D-CPT Law with plain parameters E, A, alpha, B, eta, beta, C, gamma, eps."""
    n, d, r = (np.asarray(v, float) for v in (n, d, r))
    return (
        p["E"]
        + p["A"] / n ** p["alpha"]
        + p["B"] * r ** p["eta"] / d ** p["beta"]
        + p["C"] / (r + p["eps"]) ** p["gamma"]
    )


# Start-point ranges and bounds of the log-parametrised D-CPT Law (DCPT_NAMES order).
_DCPT_LO = [-3.0, -3.0, 0.0, -3.0, 0.0, 0.0, -6.0, 0.0, -6.0]
_DCPT_HI = [2.0, 12.0, 1.0, 12.0, 1.5, 1.0, 2.0, 1.5, 0.0]
_DCPT_BOUNDS = [(-10, 10), (-30, 30), (0, 3), (-30, 30), (0, 3), (0, 3), (-30, 10), (0, 5), (-12, 2)]


def _starts_and_bounds(
    n: np.ndarray, starts: int, extra: list[tuple[float, float, tuple[float, float]]] = ()
) -> tuple[list[np.ndarray], list[tuple[float | None, float | None]]]:
    """Random starts (seeded) for the D-CPT parameters plus ``extra`` (low, high, bounds) ones.

    With one model size the N term is pinned at zero: A/N^alpha is then a constant that folds into E.
    """
    lo = np.array(_DCPT_LO + [e[0] for e in extra])
    hi = np.array(_DCPT_HI + [e[1] for e in extra])
    points = lo + (hi - lo) * np.random.default_rng(0).random((starts, len(lo)))
    bounds: list[tuple[float | None, float | None]] = [*_DCPT_BOUNDS, *(e[2] for e in extra)]
    if len(np.unique(n)) == 1:
        points[:, 1], points[:, 2] = -30.0, 0.0
        bounds[1], bounds[2] = (-30.0, -30.0), (0.0, 0.0)
    return list(points), bounds


def fit_dcpt(n: np.ndarray, d: np.ndarray, r: np.ndarray, loss: np.ndarray, starts: int = 64) -> Fit:
    """Fit the D-CPT Law (Huber on log-loss, L-BFGS from ``starts`` seeded random starts)."""
    points, bounds = _starts_and_bounds(n, starts)
    return _fit(DCPT_NAMES, _dcpt, np.column_stack([n, d, r]), loss, points, bounds)


def dcpt_params(fit: Fit) -> dict[str, float]:
    """Plain D-CPT parameters (E, A, alpha, B, eta, beta, C, gamma, eps) from a fit."""
    p = fit.params
    return {
        "E": float(np.exp(p["e"])),
        "A": float(np.exp(p["a"])),
        "alpha": p["alpha"],
        "B": float(np.exp(p["b"])),
        "eta": p["eta"],
        "beta": p["beta"],
        "C": float(np.exp(p["c"])),
        "gamma": p["gamma"],
        "eps": float(np.exp(p["log_eps"])),
    }


# --- Cross-Domain D-CPT Law: x = [N, D, r, k1, k2] -------------------------------------------------

CROSS_NAMES = (*DCPT_NAMES, "f", "mu", "log_w2")


def domain_coefficient(k1: np.ndarray, k2: np.ndarray, w2: float) -> np.ndarray:
    """K = 1/k1 + w2 * k2 from a domain's early run: k1 its first validation loss after training starts,
    k2 the relative decline of that loss between its first two evaluations. (w1 is fixed at 1: F and
    the weights are otherwise only identifiable up to scale.)"""
    return 1.0 / np.asarray(k1, float) + w2 * np.asarray(k2, float)


def _cross(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    f, mu, log_w2 = theta[-3:]
    k = domain_coefficient(x[:, 3], x[:, 4], np.exp(log_w2))
    return _dcpt(theta[:-3], x[:, :3]) + np.exp(f - mu * np.log(k))


def fit_cross_domain(
    n: np.ndarray, d: np.ndarray, r: np.ndarray, k1: np.ndarray, k2: np.ndarray, loss: np.ndarray, starts: int = 64
) -> Fit:
    """The D-CPT Law plus F/K^mu, K built per domain from its early run, so a new domain's losses can
    be predicted from about 1% of a normal run (its k1 and k2) without its own mixture grid."""
    points, bounds = _starts_and_bounds(n, starts, [(-3.0, 2.0, (-30, 10)), (0.0, 2.0, (0, 5)), (-3.0, 3.0, (-10, 10))])
    return _fit(CROSS_NAMES, _cross, np.column_stack([n, d, r, k1, k2]), loss, points, bounds)


def early_run_coefficients(first: float, second: float) -> tuple[float, float]:
    """(k1, k2) of ``domain_coefficient`` from a domain's first two validation losses after training starts."""
    if not first > 0:
        raise ValueError(f"an early run's first validation loss must be positive, got {first}")
    return float(first), float((first - second) / first)


def at_domain(fit: Fit, k1: float, k2: float) -> Fit:
    """A Cross-Domain fit specialised to one domain's (k1, k2): a D-CPT-shaped law (x = [N, D, r]) that
    ``choose_ratio`` and the held-out checks use as they use a domain's own D-CPT fit."""

    def predict(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(x, dtype=float))
        k = np.column_stack([np.full(len(x), k1), np.full(len(x), k2)])
        return _cross(theta, np.column_stack([x, k]))

    return Fit(fit.names, fit.values, fit.objective, predict, fit.r2, fit.mean_abs_rel_error)


def cross_domain_params(fit: Fit, k1: float, k2: float) -> dict[str, float]:
    """Plain D-CPT parameters of a Cross-Domain fit at one domain: its F/K^mu is a constant there, folded into E
    (so ``dcpt_loss`` and the report's plots read it as any plan's law)."""
    p = fit.params
    plain = dcpt_params(Fit(DCPT_NAMES, fit.values[: len(DCPT_NAMES)], fit.objective, _dcpt))
    k = float(domain_coefficient(np.array([k1]), np.array([k2]), float(np.exp(p["log_w2"])))[0])
    plain["E"] += float(np.exp(p["f"]) * k ** -p["mu"])
    return plain


# --- Choosing the mixture -----------------------------------------------------------------------


def law_share(kind: str, domain_share: Any) -> Any:
    """The D-CPT Law's r for one loss: the domain share for domain loss, the general share for general loss."""
    return domain_share if kind == "domain" else 1 - domain_share


def choose_ratio(
    domain_fit: Fit,
    general_fit: Fit,
    n: float,
    d: float,
    objective: str,
    general_base_loss: float | None = None,
    max_general_rise: float = 0.02,
    domain_tokens: float | None = None,
    domain_weight: float = 0.5,
    domain_base_loss: float | None = None,
    grid: np.ndarray | None = None,
) -> dict[str, float]:
    """Pick the domain share r_d of the CPT stream for one of three goals.

    - ``constrained``: minimise domain loss subject to general loss <= (1 + max_general_rise) * base.
    - ``limited_domain``: only ``domain_tokens`` exist: minimise L_d(N, D_d / r_d, r_d).
    - ``balanced``: minimise w * L_d / L_d_base + (1 - w) * L_g / L_g_base.
    The general law is evaluated at r_g = 1 - r_d. Returns the ratio and the predicted losses.
    """
    r_d = np.linspace(0.01, 0.99, 99) if grid is None else grid
    tokens = np.full_like(r_d, d, dtype=float)
    if objective == "limited_domain":
        if not domain_tokens:
            raise ValueError("objective 'limited_domain' needs domain_tokens")
        tokens = domain_tokens / r_d
    points_d = np.column_stack([np.full_like(r_d, n), tokens, law_share("domain", r_d)])
    points_g = np.column_stack([np.full_like(r_d, n), tokens, law_share("general", r_d)])
    loss_d, loss_g = domain_fit.predict(points_d), general_fit.predict(points_g)
    if objective == "constrained":
        if general_base_loss is None:
            raise ValueError("objective 'constrained' needs general_base_loss")
        allowed = loss_g <= (1 + max_general_rise) * general_base_loss
        if not allowed.any():
            index = int(np.argmin(loss_g))  # nothing meets the bound: least general harm
        else:
            index = int(np.flatnonzero(allowed)[np.argmin(loss_d[allowed])])
    elif objective == "limited_domain":
        index = int(np.argmin(loss_d))
    elif objective == "balanced":
        if general_base_loss is None or domain_base_loss is None:
            raise ValueError("objective 'balanced' needs both base losses")
        score = domain_weight * loss_d / domain_base_loss + (1 - domain_weight) * loss_g / general_base_loss
        index = int(np.argmin(score))
    else:
        raise ValueError(f"unknown objective '{objective}': constrained, limited_domain or balanced")
    return {
        "domain_share": float(r_d[index]),
        "replay_ratio": float(1 - r_d[index]),
        "tokens": float(tokens[index]),
        "predicted_domain_loss": float(loss_d[index]),
        "predicted_general_loss": float(loss_g[index]),
    }


# --- Compute-optimal allocation of the cross-lingual CPT law ------------------------------------


def cross_lingual_allocation(alpha: float, beta_prime: float, gamma: float) -> tuple[float, float]:
    """Exponents (a, b) of N_opt ~ C^a and D_opt ~ C^b for L = E + A/N^alpha + B/(N^gamma * D^beta').

    With C = 6ND, substituting D = C/(6N) gives A*N^-alpha + B*(C/6)^-beta' * N^(beta'-gamma); setting
    the derivative in N to zero gives N_opt ~ C^(beta' / (alpha + beta' - gamma)), D_opt ~ C^(1 - a).
    """
    a = beta_prime / (alpha + beta_prime - gamma)
    return a, 1 - a


# --- Joint N-D law: x = [N, D] ----------------------------------------------------------------

JOINT_NAMES = ("e", "a", "alpha", "b", "gamma", "beta_prime")


def _joint(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    e, a, alpha, b, gamma, beta_prime = theta
    log_n, log_d = np.log(x[:, 0]), np.log(x[:, 1])
    return np.exp(e) + np.exp(a - alpha * log_n) + np.exp(b - gamma * log_n - beta_prime * log_d)


def fit_joint_nd(n: np.ndarray, d: np.ndarray, loss: np.ndarray, starts: int = 64) -> Fit:
    """Fit L = E + A/N^alpha + B/(N^gamma * D^beta'): Chinchilla's data term made to depend on model size
    (the cross-lingual CPT law's joint N-D term); gamma > 0 means larger models learn more from each token."""
    lo, hi = np.array([-2.0, 0.0, 0.0, 0.0, -0.3, 0.0]), np.array([2.0, 10.0, 1.0, 10.0, 0.5, 1.0])
    points = lo + (hi - lo) * np.random.default_rng(0).random((starts, len(lo)))
    bounds = [(-10, 10), (-30, 30), (0, 3), (-30, 30), (-2, 2), (0, 3)]
    return _fit(JOINT_NAMES, _joint, np.column_stack([n, d]), loss, list(points), bounds)


def joint_nd_params(fit: Fit) -> dict[str, float]:
    """Plain parameters E, A, alpha, B, gamma, beta' of a joint N-D fit."""
    p = fit.params
    plain = {name: p[name] for name in ("alpha", "gamma", "beta_prime")}
    return {"E": float(np.exp(p["e"])), "A": float(np.exp(p["a"])), "B": float(np.exp(p["b"])), **plain}


def compute_optimal(fit: Fit, compute: float, n_range: tuple[float, float] = (1e3, 1e12)) -> dict[str, float]:
    """The model size N (and data D = C / 6N) with the lowest loss a fit on x = [N, D] predicts at compute C
    (FLOPs, C = 6 N D), searched on a fine log grid of N rather than from exponents, so it holds for any fit."""
    n = np.geomspace(*n_range, 4001)
    d = compute / (6 * n)
    loss = fit.predict(np.column_stack([n, d]))
    best = int(np.argmin(loss))
    return {"compute": float(compute), "n": float(n[best]), "d": float(d[best]), "loss": float(loss[best])}


# --- CPT learning-dynamics law --------------------------------------------------------------------


def schedule_areas(learning_rates: Sequence[float], decay: float = 0.999) -> tuple[np.ndarray, np.ndarray]:
    """S1 (cumulative learning rate) and S2 (annealing area, momentum form) after each step.

    S2 = sum_i sum_{k<=i} (eta_{k-1} - eta_k) * decay^(i-k): the learning-rate drops, remembered with
    momentum, summed over steps (Tissue et al. 2024's form, used by Wang et al. 2025).
    """
    lr = np.asarray(learning_rates, dtype=float)
    s1 = np.cumsum(lr)
    drops = np.concatenate([[0.0], lr[:-1] - lr[1:]])
    momentum = np.zeros_like(lr)
    running = 0.0
    for i, drop in enumerate(drops):
        running = running * decay + drop
        momentum[i] = running
    return s1, np.cumsum(momentum)


CURVE_NAMES = ("l0", "log_a", "log_s1_pt", "alpha", "c2", "b", "log_e", "beta")


def _curve(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    l0, log_a, log_s1_pt, alpha, c2, b, log_e, beta = theta
    s1, s2 = x[:, 0], x[:, 1]
    return (
        l0
        + np.exp(log_a) * (np.exp(log_s1_pt) + s1) ** (-alpha)
        - c2 * s2
        + b * (1 - (1 + np.exp(log_e) * s1) ** (-beta))
    )


def fit_cpt_curve(s1: np.ndarray, s2: np.ndarray, loss: np.ndarray) -> Fit:
    """Fit the learning-dynamics law to one validation curve (B > 0 general, B < 0 domain)."""
    grid = itertools.product(
        [np.min(loss) * 0.8], [0.0], [-2.0, 2.0, 6.0], [0.5], [0.0], [-0.5, 0.5], [-3.0, 0.0, 3.0], [0.5]
    )
    bounds = [(0.0, None), (-10, 10), (-10, 15), (0.0, 3.0), (-50, 50), (-5, 5), (-10, 10), (0.01, 5)]
    return _fit(CURVE_NAMES, _curve, np.column_stack([s1, s2]), loss, [np.array(s) for s in grid], bounds)


def _areas_at(rates: Sequence[float], steps: Sequence[int], scale: float) -> np.ndarray:
    """[S1, S2] after each of ``steps`` updates of a schedule (``rates``: one per update, in units of ``scale``)."""
    s1, s2 = schedule_areas(np.asarray(rates, dtype=float) / scale)
    s1, s2 = np.concatenate([[0.0], s1]), np.concatenate([[0.0], s2])
    at = np.asarray(steps, dtype=int)
    return np.column_stack([s1[at], s2[at]])


def fit_schedule_runs(runs: Sequence[tuple[Sequence[float], Sequence[int], Sequence[float]]], scale: float) -> Fit:
    """The learning-dynamics law fitted jointly to several runs, each ``(rates per update, evaluated steps, losses)``:
    runs under different schedules (a constant rate, a decay) separate the S1 and S2 terms."""
    x = np.vstack([_areas_at(rates, steps, scale) for rates, steps, _ in runs])
    loss = np.concatenate([np.asarray(losses, dtype=float) for _, _, losses in runs])
    return fit_cpt_curve(x[:, 0], x[:, 1], loss)


def final_loss(fit: Fit, rates: Sequence[float], scale: float) -> float:
    """The law's loss after the last update of a schedule."""
    return float(fit.predict(_areas_at(rates, [len(rates)], scale))[0])


def choose_schedule(
    domain_fit: Fit,
    general_fit: Fit,
    candidates: dict[str, Sequence[float]],
    scale: float,
    objective: str,
    general_base_loss: float,
    domain_base_loss: float,
    max_general_rise: float = 0.02,
    domain_weight: float = 0.5,
) -> tuple[str, dict[str, dict[str, float]]]:
    """The candidate schedule (name -> rate per update) whose predicted final losses best meet ``objective``:
    ``constrained`` (lowest domain loss with general loss at most ``max_general_rise`` above base; with none
    allowed, the least general harm) or ``balanced`` (weighted relative losses). Returns the name and every
    candidate's predictions."""
    predicted = {
        name: {"domain": final_loss(domain_fit, rates, scale), "general": final_loss(general_fit, rates, scale)}
        for name, rates in candidates.items()
    }
    if objective == "constrained":
        bound = (1 + max_general_rise) * general_base_loss
        allowed = [name for name, p in predicted.items() if p["general"] <= bound]
        if not allowed:
            return min(predicted, key=lambda n: predicted[n]["general"]), predicted
        return min(allowed, key=lambda n: predicted[n]["domain"]), predicted
    if objective == "balanced":

        def score(name: str) -> float:
            relative = predicted[name]["domain"] / domain_base_loss, predicted[name]["general"] / general_base_loss
            return domain_weight * relative[0] + (1 - domain_weight) * relative[1]

        return min(predicted, key=score), predicted
    raise ValueError(f"unknown objective '{objective}': constrained or balanced")


def _logged_points(history: list[dict], kind: str, scale: float | None) -> tuple[np.ndarray, ...] | None:
    """(steps, S1, S2, loss, scale) at a log's ``eval_<kind>_loss`` points; S1 in steps at rate ``scale``."""
    lr_by_step = {r["step"]: r["learning_rate"] for r in history if "learning_rate" in r and "step" in r}
    evals = sorted({r["step"]: r[f"eval_{kind}_loss"] for r in history if f"eval_{kind}_loss" in r}.items())
    if not evals or not lr_by_step:
        return None
    last = max(lr_by_step)
    rates = np.array([lr_by_step.get(step, 0.0) for step in range(1, last + 1)])
    scale = scale or max(float(rates.max()), 1e-30)  # S1 in steps at the peak rate: keeps the fit well scaled
    steps = np.array([s for s, _ in evals])
    areas = _areas_at(rates, np.minimum(steps, last), scale)
    return steps, areas[:, 0], areas[:, 1], np.array([v for _, v in evals]), np.array(scale)


def fit_logged_curve(history: list[dict], kind: str, min_points: int = 5) -> dict | None:
    """Fit the learning-dynamics law to a Trainer log (``eval_<kind>_loss`` points, per-step learning rates).

    Returns the fit, its fitted losses at the logged points and, when there are enough points, the
    error of a fit on the first two thirds predicting the last third. None with too few points.
    """
    points = _logged_points(history, kind, None)
    if points is None or len(points[0]) < min_points:
        return None
    steps, s1, s2, loss, scale = points
    fit = fit_cpt_curve(s1, s2, loss)
    result = {
        "steps": steps.tolist(),
        "measured": loss.tolist(),
        "fitted": fit.predict(np.column_stack([s1, s2])).tolist(),
        "fit_error": fit.mean_abs_rel_error,
        "params": fit.params,
        "lr_scale": float(scale),
    }
    cut = int(np.ceil(len(steps) * 2 / 3))
    if len(steps) >= 6 and cut < len(steps):
        early = fit_cpt_curve(s1[:cut], s2[:cut], loss[:cut])
        predicted = early.predict(np.column_stack([s1[cut:], s2[cut:]]))
        result["early_fit_prediction_error"] = mean_abs_rel_error(predicted, loss[cut:])
        result["early_fit_points"] = cut
    return result


def predict_logged_curve(fitted: dict, history: list[dict], kind: str) -> dict | None:
    """Use a curve fitted on one run (``fit_logged_curve``) to predict another run's logged losses
    from that run's own learning-rate schedule (another schedule, a longer run)."""
    points = _logged_points(history, kind, fitted["lr_scale"])
    if points is None:
        return None
    steps, s1, s2, loss, _ = points
    theta = np.array([fitted["params"][name] for name in CURVE_NAMES])
    predicted = _curve(theta, np.column_stack([s1, s2]))
    return {
        "steps": steps.tolist(),
        "measured": loss.tolist(),
        "predicted": predicted.tolist(),
        "mean_abs_rel_error": mean_abs_rel_error(predicted, loss),
        "final_error": float((predicted[-1] - loss[-1]) / loss[-1]),
    }


def plan_curves(plan: dict[str, Any], tokens: Any) -> dict[str, dict[float, Any]]:
    """A plan's fitted D-CPT laws along ``tokens`` for each of its proxies' domain shares (the report's plot).

    ``plan`` is the plan stage's plan.json: its ``points`` give the shares, its ``fits`` the law params."""
    tokens = np.asarray(tokens, dtype=float)
    curves: dict[str, dict[float, Any]] = {"domain": {}, "general": {}}
    shares = sorted({p["domain_share"] for p in plan["points"]})
    for kind in ("domain", "general"):
        params = plan["fits"][kind]["params"]
        for share in shares:
            r = np.full_like(tokens, law_share(kind, share))
            curves[kind][share] = dcpt_loss(np.ones_like(tokens), tokens, r, params)
    return curves
