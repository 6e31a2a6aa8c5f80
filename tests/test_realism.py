"""Anatomy-aware realism metrics: the simulator lands in the real ranges, the command compares datasets."""

from __future__ import annotations

import json
import re

import numpy as np
from click.testing import CliRunner

from synthscan.cli import main
from synthscan.evaluation import realism
from synthscan.simulator import load_site, simulate_dataset


def test_simulated_studies_sit_in_most_real_ranges(tmp_path):
    """The embedded default looks like real scans by the landmark metrics (85 % of them on 24 studies;
    a few studies spread more), including those the drawn simulator failed: P/A, ribs, soft tissue, hips."""
    config = load_site("centre_a", {"counts_per_view": [400_000, 700_000]})
    simulate_dataset(config, 6, tmp_path / "sim", seed=1, workers=1, progress=False)
    result = realism.measure_dataset(tmp_path / "sim", 500_000, None)
    targets = realism.load_targets(realism.TARGETS, 500_000)
    realism.summarise(result, targets)
    assert len(result["studies"]) == 6
    assert result["inside"] >= 0.8 * result["compared"], result["summary"]
    for name in ("pa_total", "pa_legs", "rib_modulation_post", "hip_over_lumbar_spine_ant"):
        assert result["summary"][name]["inside"], (name, result["summary"][name])


def test_command_compares_a_dataset_with_a_reference(tmp_path):
    config = load_site("centre_a", {"counts_per_view": [400_000, 700_000]})
    simulate_dataset(config, 3, tmp_path / "a", seed=2, workers=1, progress=False)
    low = load_site("centre_a", {"counts_per_view": [150_000, 200_000]})
    simulate_dataset(low, 3, tmp_path / "b", seed=2, workers=1, progress=False)
    out = tmp_path / "r.json"
    result = CliRunner().invoke(
        main,
        ["evaluate", "realism", str(tmp_path / "b"), "--reference", str(tmp_path / "a"), "--json", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "metrics inside the range" in result.output
    report = json.loads(out.read_text())
    other = report["datasets"][1]["summary"]
    assert other["counts_ant_M"]["inside"] is False  # a third of the counts: outside the reference's range
    assert report["ranges"]["counts_ant_M"]["min"] > 0.35
    # every low-count study below every reference study, but 3 against 3 cannot reach p < 0.05 (the
    # smallest exact two-sided p is 0.1), let alone after Holm's correction
    assert report["datasets"][1]["separation"]["counts_ant_M"]["auc"] == 0.0
    assert re.search(r"\b0 of \d+ metrics tell it", result.output), result.output
    assert "counts_ant_M: AUC 0.00" in result.output


def test_separation_flags_a_metric_that_alone_tells_the_sets_apart():
    """A median inside the range is not enough: a shifted metric separates, an unchanged one does not."""
    rng = np.random.default_rng(0)

    def dataset(shift: float) -> dict:
        values = [
            {
                "rib_modulation_post": 0.1 + shift + 0.01 * rng.standard_normal(),
                "pa_total": 1 + 0.01 * rng.standard_normal(),
            }
            for _ in range(20)
        ]
        return {
            "studies": {str(i): {m: v.get(m, np.nan) for m in realism.METRICS} for i, v in enumerate(values)}
        }

    table = realism.separation(dataset(0.0), dataset(-0.03))
    assert set(table) == {"rib_modulation_post", "pa_total"}  # metrics without values are left out
    assert table["rib_modulation_post"]["auc"] < 0.05 and table["rib_modulation_post"]["separates"]
    assert 0.2 < table["pa_total"]["auc"] < 0.8 and not table["pa_total"]["separates"]
    text = realism.format_separation("smooth", table)
    assert text.splitlines()[1].startswith("  rib_modulation_post: AUC")


def test_command_fails_clearly_on_a_folder_without_studies(tmp_path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["evaluate", "realism", str(tmp_path / "empty")])
    assert result.exit_code != 0
    assert "manifest.csv" in result.output and "Traceback" not in result.output
