"""``benchmarks/generator_quality.py`` on a model whose labels start guidance at different steps.

    python docs/projected_guidance/per_label_interval.py LABEL=START [LABEL=START ...] GENERATOR_QUALITY_ARGS

The model keeps its own guidance interval. A study whose label is given starts guidance later, at the
share START of the solver steps: before that step its row gets the conditional output alone, as the
pipeline's unguided steps give it (e.g. ``normal=0.4 metastasis=0.4`` on a model guided over
``[0.2, 1]``). An experiment: the model's scales, seeds and everything else are unchanged.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from pathlib import Path

from synthscan.generator.conditions import split_key
from synthscan.generator.storage import load_pipeline


def loader(starts: dict[str, float]) -> Callable:
    """A ``load_pipeline`` whose pipelines start guidance for the labels of ``starts`` at their share."""

    def load(path, **kwargs):
        pipe = load_pipeline(path, **kwargs)
        labels_of = [split_key(key)[0] for key in pipe.config.conditions]
        shipped = pipe._guided_output

        def guided(self, x, t, labels, nulls, g=None):
            out = shipped(x, t, labels, nulls, g)
            if g is None:
                return out
            timesteps = list(self.scheduler.timesteps)
            index = timesteps.index(t)
            late = [index < int(starts.get(labels_of[int(i)], 0.0) * len(timesteps)) for i in labels[:, 0]]
            rows = [k for k, is_late in enumerate(late) if is_late]
            if rows:
                out[rows] = shipped(x[rows], t, labels[rows], labels[rows])  # conditional output alone
            return out

        pipe._guided_output = types.MethodType(guided, pipe)
        return pipe

    return load


def main() -> None:
    args = sys.argv[1:]
    pairs = [a for a in args if "=" in a and not a.startswith("-")]
    starts = {label: float(share) for label, share in (p.split("=") for p in pairs)}
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import generator_quality

    generator_quality.load_pipeline = loader(starts)
    sys.argv = [sys.argv[0], *[a for a in args if a not in pairs]]
    generator_quality.main()


if __name__ == "__main__":
    main()
