"""House-monotone apportionment: items over keys in proportion to weights, one item at a time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


def apportion(n: int, weights: Mapping[K, float]) -> list[K]:
    """The key of each of ``n`` items, in proportion to ``weights`` (a key of weight 0 gets none).

    Each item goes to the key furthest below its share so far; ties go to the earlier key. So the
    first ``k`` items are the same whatever ``n``: a larger plan contains a smaller one, and an
    interrupted one keeps the mix. Raises ``ValueError`` for items when every weight is 0.
    """
    keys = [k for k, w in weights.items() if w > 0]
    if not keys:
        if n:
            raise ValueError(f"cannot share {n} items out: every weight is 0")
        return []
    total = float(sum(weights[k] for k in keys))
    given: Counter = Counter()
    sequence = []
    for i in range(n):
        key = max(keys, key=lambda k: weights[k] / total * (i + 1) - given[k])
        given[key] += 1
        sequence.append(key)
    return sequence


def apportion_counts(n: int, weights: Mapping[K, float]) -> dict[K, int]:
    """How many of ``n`` items each key gets by :func:`apportion` (keys in ``weights``' order, 0 included).

    A key's count never falls as ``n`` grows (no Alabama paradox, which largest remainders have), so a
    plan grown in steps keeps what a smaller one already made.
    """
    return dict.fromkeys(weights, 0) | Counter(apportion(n, weights))
