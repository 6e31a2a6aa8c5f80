"""Where the body ends: the last row holding counts, held-out studies against sample sets.

    python docs/body_redraw/body_end.py HELD_OUT SET [SET ...]

The simulator stops 5 % of its scans above the feet (``partial_scan_fraction``: the table stops at 55-85 %
of the patient's height), so a sample ending at mid-thigh is not by itself a malformation; what would be
is a generator that ends bodies early more often than its training site does. Prints, per dataset, the
percentiles of the last row with any count (both views) and of ``body_rows``' last body row, the share
ending above row 650 (64 % of the 1024-row field), and each set's two-sample Kolmogorov-Smirnov and
Mann-Whitney tests against the held-out studies.
"""

from __future__ import annotations

import sys

import numpy as np
from scipy import stats

from synthscan.dataset import Dataset
from synthscan.generator.transform import AcquisitionWindow, body_rows

EARLY_ROW = 650


def last_rows(root: str) -> tuple[np.ndarray, np.ndarray]:
    """Per study: the last row with any count, and the last row of the body (``body_rows``)."""
    counted, body = [], []
    for study in Dataset.open(root).iter_studies():
        profile = np.asarray(study.counts, dtype=np.float64).sum(axis=(0, 2))
        counted.append(int(np.flatnonzero(profile > 0)[-1]))
        body.append(body_rows(study.counts, AcquisitionWindow.body_fraction)[1])
    return np.asarray(counted), np.asarray(body)


def main() -> None:
    held, *sets = sys.argv[1:]
    if not sets:
        sys.exit(__doc__)
    reference = last_rows(held)
    print(
        "| dataset | n | last counted row: min / 5 % / median / max | last body row: min / 5 % / median "
        f"| ending above row {EARLY_ROW} | KS p / Mann-Whitney p (last counted row vs held-out) |"
    )
    print("|---|---|---|---|---|---|")
    for root in [held, *sets]:
        counted, body = reference if root == held else last_rows(root)
        tests = (
            ""
            if root == held
            else (
                f"{stats.ks_2samp(counted, reference[0]).pvalue:.2f} / "
                f"{stats.mannwhitneyu(counted, reference[0]).pvalue:.2f}"
            )
        )
        q = np.percentile(counted, [0, 5, 50, 100]).round().astype(int)
        b = np.percentile(body, [0, 5, 50]).round().astype(int)
        early = int((counted < EARLY_ROW).sum())
        print(
            f"| {root} | {len(counted)} | {' / '.join(map(str, q))} | {' / '.join(map(str, b))} "
            f"| {early} ({early / len(counted):.3f}) | {tests} |"
        )


if __name__ == "__main__":
    main()
