"""BG/NBD (Fader, Hardie & Lee 2005) and Gamma-Gamma (Fader, Hardie & Lee 2005b) on numpy arrays.

Per customer: `x` repeat purchases (purchase days after the first), `t_x` the time of the last one and
`T` the age, all measured from the first purchase in weeks. The BG/NBD gives P(alive) and the expected
number of purchases in the next `t` weeks; the Gamma-Gamma the expected value of one purchase. The
`lifetimes` package that used to carry these is unmaintained, and the likelihoods are short.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

Array = NDArray[np.float64]
FIT_SAMPLE = 200_000


@dataclass(frozen=True, slots=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float

    def _odds_dead(self, x: Array, t_x: Array, T: Array) -> Array:
        """a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x) for x > 0, else 0 (a customer seen once cannot have died yet)."""
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            log_odds = (np.log(self.a) - np.log(np.maximum(self.b + x - 1, 1e-12))
                        + (self.r + x) * (np.log(self.alpha + T) - np.log(self.alpha + t_x)))  # fmt: skip
        return np.where(x > 0, np.exp(np.minimum(log_odds, 700.0)), 0.0)

    def p_alive(self, x: Array, t_x: Array, T: Array) -> Array:
        return 1.0 / (1.0 + self._odds_dead(x, t_x, T))

    def expected_purchases(self, t: float, x: Array, t_x: Array, T: Array) -> Array:
        """E[purchases in (T, T+t] | x, t_x, T] (FHL 2005, equation 10)."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        z = t / (alpha + T + t)
        hyp = hyp2f1(r + x, b + x, a + b + x - 1, z)
        head = (a + b + x - 1) / (a - 1)
        body = 1.0 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp
        return np.asarray(head * body / (1.0 + self._odds_dead(x, t_x, T)), dtype=np.float64)


def _bgnbd_nll(log_params: Array, x: Array, t_x: Array, T: Array, weights: Array) -> float:
    r, alpha, a, b = np.exp(log_params)
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.log(a) - np.log(b + x - 1) - (r + x) * np.log(alpha + t_x)
    a4 = np.where(x > 0, a4, -np.inf)
    ll = a1 + a2 + np.logaddexp(a3, a4)
    return float(-(weights * ll).sum() / weights.sum())


def fit_bgnbd(x: Array, t_x: Array, T: Array, *, max_customers: int = FIT_SAMPLE, seed: int = 0) -> BgNbd:
    """Maximum likelihood on (x, t_x, T). The four parameters describe the population, so a large base
    is fitted on a random sample of `max_customers`; scoring then covers everyone."""
    if len(x) > max_customers:
        pick = np.random.default_rng(seed).choice(len(x), max_customers, replace=False)
        x, t_x, T = x[pick], t_x[pick], T[pick]
    # identical (x, t_x, T) triples are evaluated once, with a weight (most buyers bought once)
    triples, weights = np.unique(np.column_stack([x, t_x, T]), axis=0, return_counts=True)
    args = (triples[:, 0], triples[:, 1], triples[:, 2], weights.astype(np.float64))
    start = np.log(np.array([0.5, max(float(np.mean(T)), 1.0), 1.0, 1.0]))
    # bounded: without repeat purchases in the data the likelihood runs off to a corner
    bounds = [(-9.0, 9.0)] * 4
    result = minimize(_bgnbd_nll, start, args=args, method="L-BFGS-B", bounds=bounds)
    if not result.success:  # a rough surface: the simplex is slower but does not need gradients
        result = minimize(_bgnbd_nll, result.x, args=args, method="Nelder-Mead", options={"maxiter": 1000})
    r, alpha, a, b = (float(v) for v in np.exp(np.clip(result.x, -9.0, 9.0)))
    if abs(a - 1.0) < 1e-6:  # E[purchases] divides by a - 1
        a = 1.0 + 1e-6
    return BgNbd(r=r, alpha=alpha, a=a, b=b)


@dataclass(frozen=True, slots=True)
class GammaGamma:
    p: float
    q: float
    gamma: float

    def expected_value(self, x: Array, m_x: Array) -> Array:
        """E[value of one purchase | x repeat purchases averaging m_x]; the population mean when x = 0."""
        p, q, g = self.p, self.q, self.gamma
        population = p * g / (q - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            conditional = p * (g + x * m_x) / (p * x + q - 1)
        return np.where(x > 0, conditional, population)


def _gg_nll(log_params: Array, x: Array, m_x: Array) -> float:
    p, q, g = np.exp(log_params)
    px = p * x
    ll = (gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(g)
          + (px - 1) * np.log(m_x) + px * np.log(x) - (px + q) * np.log(g + x * m_x))  # fmt: skip
    return float(-ll.mean())


def fit_gamma_gamma(x: Array, m_x: Array) -> GammaGamma:
    """Fit on repeat buyers with a positive average value; falls back to a flat prior without them."""
    keep = (x > 0) & (m_x > 0)
    if keep.sum() < 10:
        mean = float(m_x[keep].mean()) if keep.any() else 0.0
        return GammaGamma(p=1.0, q=101.0, gamma=100.0 * mean)  # population mean = mean, almost no shrinkage
    xs, ms = x[keep], m_x[keep]
    if len(xs) > FIT_SAMPLE:
        pick = np.random.default_rng(0).choice(len(xs), FIT_SAMPLE, replace=False)
        xs, ms = xs[pick], ms[pick]
    start = np.log(np.array([1.0, 2.0, float(ms.mean())]))
    bounds = [(-9.0, 9.0), (1e-6, 9.0), (-9.0, 15.0)]  # q > 1: the population mean must exist
    result = minimize(_gg_nll, np.clip(start, [b[0] for b in bounds], [b[1] for b in bounds]), args=(xs, ms),
                      method="L-BFGS-B", bounds=bounds)  # fmt: skip
    p, q, g = (float(v) for v in np.exp(result.x))
    return GammaGamma(p=p, q=max(q, 1.0 + 1e-6), gamma=g)
