"""Personas (客户画像分群): k-means on standardised behaviour, named in Chinese from each cluster's
distinguishing traits, and kept stable from night to night by matching centroids to yesterday's.

Features (natural units in `FEATURES`, log-scaled where heavy-tailed before standardising): spend,
days since the last order, orders, messages and topics asked in 90 days, complaint tickets in a year,
the share of messages on WeChat, and P(buys again within 90 days).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

FEATURES = ("spend", "recency_days", "orders", "messages_90d", "topics_90d", "tickets_365d", "wechat_share", "p_repeat")
LOG_SCALED = {"spend", "orders", "messages_90d", "topics_90d", "tickets_365d"}
K = 6
SAMPLE = 200_000  # k-means learns on a sample; every customer is then assigned to the nearest centroid


def transform(raw: NDArray[np.float64]) -> NDArray[np.float64]:
    out = raw.copy()
    for j, name in enumerate(FEATURES):
        if name in LOG_SCALED:
            out[:, j] = np.log1p(np.maximum(out[:, j], 0))
    return out


@dataclass(slots=True)
class Clustering:
    mean: NDArray[np.float64]
    scale: NDArray[np.float64]
    centroids: NDArray[np.float64]  # standardised
    names: list[str] = field(default_factory=list)

    def assign(self, raw: NDArray[np.float64], chunk: int = 100_000) -> NDArray[np.int64]:
        labels = np.empty(len(raw), dtype=np.int64)
        for start in range(0, len(raw), chunk):
            z = (transform(raw[start:start + chunk]) - self.mean) / self.scale
            labels[start:start + chunk] = ((z[:, None, :] - self.centroids[None]) ** 2).sum(-1).argmin(1)
        return labels


# (high, low) words for each feature: the second trait that tells two similar groups apart
SECOND = {"spend": ("高消费", "低消费"), "recency_days": ("久未购", "近期购"), "orders": ("高频", "低频"),
          "messages_90d": ("常咨询", "少咨询"), "topics_90d": ("多问题", "少问题"),
          "tickets_365d": ("多投诉", "少投诉"), "wechat_share": ("微信为主", "网页为主"),
          "p_repeat": ("易复购", "难复购")}  # fmt: skip


def name_cluster(z: NDArray[np.float64], taken: set[str]) -> str:
    """A short Chinese name from the centroid's standardised traits (value, activity, after-sales);
    a name already taken gets the cluster's strongest other trait, then a number."""
    f = dict(zip(FEATURES, z, strict=True))
    value = "高价值" if f["spend"] > 0.5 else "低价值" if f["spend"] < -0.5 else ""
    if f["tickets_365d"] > 0.8:
        state = "售后敏感"
    elif f["recency_days"] > 0.5:
        state = "沉睡"
    elif f["orders"] < -0.3 and f["recency_days"] < 0:
        state = "新客活跃"
    elif f["messages_90d"] > 0.8 or f["topics_90d"] > 0.8:
        state = "咨询活跃"
    elif f["recency_days"] < -0.3:
        state = "活跃"
    else:
        state = "一般"
    name = (value + state) or "普通"
    if name in taken:  # one more trait, the strongest the name does not already say
        said = {"spend"} if value else set()
        feature = max((k for k in SECOND if k not in said), key=lambda k: abs(f[k]))
        name = (name + SECOND[feature][0 if f[feature] > 0 else 1])[:16]
    base, n = name, 2
    while name in taken:
        name, n = f"{base}{n}", n + 1
    taken.add(name)
    return name


def cluster(raw: NDArray[np.float64], previous: list[tuple[str, list[float]]] | None = None,
            k: int = K, seed: int = 0) -> Clustering:  # fmt: skip
    """Fit k-means; clusters matched to `previous` (name, centroid) keep their names."""
    from scipy.optimize import linear_sum_assignment
    from sklearn.cluster import KMeans

    data = transform(raw)
    mean, scale = data.mean(0), data.std(0)
    scale[scale == 0] = 1.0
    rng = np.random.default_rng(seed)
    sample = data[rng.choice(len(data), SAMPLE, replace=False)] if len(data) > SAMPLE else data
    z = (sample - mean) / scale
    k = max(1, min(k, len(np.unique(z, axis=0))))
    old = [(name, np.asarray(c, dtype=np.float64)) for name, c in (previous or []) if len(c) == len(FEATURES)]
    init: NDArray[np.float64] | str = "k-means++"
    if len(old) == k:  # start from yesterday's centres: the same groups come back in the same places
        init = np.vstack([c for _, c in old])
    model = KMeans(n_clusters=k, init=init, n_init=1 if len(old) == k else 4, random_state=seed).fit(z)
    centroids = np.asarray(model.cluster_centers_, dtype=np.float64)
    names: list[str | None] = [None] * k
    taken: set[str] = set()
    if old:
        cost = ((centroids[:, None, :] - np.vstack([c for _, c in old])[None]) ** 2).sum(-1)
        for i, j in zip(*linear_sum_assignment(cost), strict=True):
            if cost[i, j] < 1.0:  # close enough to be the same group
                names[i] = old[j][0]
                taken.add(old[j][0])
    final = [n if n is not None else name_cluster(centroids[i], taken) for i, n in enumerate(names)]
    return Clustering(mean, scale, centroids, final)


def traits(raw: NDArray[np.float64], labels: NDArray[np.int64], k: int) -> list[dict[str, float]]:
    """Mean of each feature (natural units) per cluster, for the dashboard."""
    out = []
    for i in range(k):
        rows = raw[labels == i]
        out.append({name: round(float(rows[:, j].mean()), 3) if len(rows) else 0.0 for j, name in enumerate(FEATURES)})
    return out
