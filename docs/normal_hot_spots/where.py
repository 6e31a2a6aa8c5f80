"""Where the lesion detector marks normal studies, and a picture of the most-marked ones.

    python docs/normal_hot_spots/where.py DET OUT.png DATASET [DATASET ...]

For each dataset's first 60 normal studies: marks per study by body-height band (head to feet: the
rows between the first and last whose 9-row moving mean exceeds 5 % of the peak row's counts), the
abdomen band's marks by body-width fraction (spine at the middle, kidneys beside it), and, in OUT.png,
each dataset's four most-marked studies among its first 40 (anterior | posterior mirrored into the
anterior's left-right frame, as the detector sees them; red: a mark).
"""

from __future__ import annotations

import sys

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from synthscan.dataset import Dataset
from synthscan.evaluation.lesions import LesionDetector

HEIGHT = {
    "head": 0.12,
    "neck-thorax": 0.30,
    "abdomen": 0.48,
    "pelvis": 0.60,
    "thigh-knee": 0.80,
    "shin-foot": 1.01,
}
WIDTH = [0, 0.3, 0.42, 0.47, 0.53, 0.58, 0.7, 1.0]  # abdomen: lateral, kidney, spine edge, spine, ...


def extent(profile: np.ndarray) -> tuple[int, int]:
    rows = np.flatnonzero(ndimage.uniform_filter1d(profile, 9) > 0.05 * profile.max())
    return rows[0], rows[-1]


def marks(
    detector: LesionDetector, counts: np.ndarray, probabilities: np.ndarray
) -> list[tuple[float, float]]:
    """Each mark's centre as (body-height, body-width) fractions."""
    top, bottom = extent(counts.sum(axis=(0, 2)))
    left, right = extent(counts.sum(axis=(0, 1)))
    f = counts.shape[1] // probabilities.shape[0]
    labels, n = detector.regions(probabilities)
    centres = ndimage.center_of_mass(np.ones_like(labels), labels, range(1, n + 1))
    return [((y * f - top) / (bottom - top), (x * f - left) / (right - left)) for y, x in centres]


def panel(detector: LesionDetector, counts: np.ndarray, probabilities: np.ndarray, title: str) -> Image.Image:
    width = counts.shape[2]
    image = np.sqrt(np.concatenate([counts[0], counts[1][:, ::-1]], axis=1))
    grey = 255 - np.clip(255 * image / np.percentile(image, 99.5), 0, 255)
    out = Image.fromarray(grey.astype(np.uint8)).convert("RGB")
    draw = ImageDraw.Draw(out)
    f = counts.shape[1] // probabilities.shape[0]
    labels, n = detector.regions(probabilities)
    for y, x in ndimage.center_of_mass(np.ones_like(labels), labels, range(1, n + 1)):
        for cx in (x * f, width + x * f):  # the posterior is shown mirrored into the anterior's frame
            draw.ellipse([cx - 12, y * f - 12, cx + 12, y * f + 12], outline=(220, 0, 0), width=3)
    draw.text((4, 4), title, fill=(0, 0, 255))
    return out.crop((0, 0, out.width, 800))


def main() -> None:
    detector, png, roots = LesionDetector.load(sys.argv[1]), sys.argv[2], sys.argv[3:]
    panels = []
    for root in roots:
        dataset = Dataset.open(root)
        records = [r for r in dataset.records if r.label == "normal"][:60]
        counts = np.stack([dataset.read(r).counts for r in records]).astype(np.float32)
        probabilities = detector.probabilities(counts)
        found = [marks(detector, c, p) for c, p in zip(counts, probabilities, strict=True)]
        heights = np.array([h for study in found for h, _ in study])
        bands = np.searchsorted(list(HEIGHT.values()), heights, side="right")
        per_band = ", ".join(
            f"{name} {np.sum(bands == i) / len(records):.2f}" for i, name in enumerate(HEIGHT)
        )
        abdomen = [w for study in found for h, w in study if HEIGHT["neck-thorax"] <= h < HEIGHT["abdomen"]]
        by_width = np.histogram(abdomen, bins=WIDTH)[0] / len(records)
        print(
            f"{root}: {len(records)} normal studies, {len(heights) / len(records):.2f} marks each; {per_band}"
        )
        print(f"  abdomen marks per study by body-width fraction {WIDTH}: {by_width.round(2).tolist()}")
        most = np.argsort([-len(m) for m in found[:40]], kind="stable")[:4]
        panels += [
            panel(detector, counts[i], probabilities[i], f"{records[i].study_id} marks {len(found[i])}")
            for i in most
        ]
    w, h = panels[0].size
    sheet = Image.new("RGB", (4 * w, h * len(roots)), "white")
    for j, image in enumerate(panels):
        sheet.paste(image, ((j % 4) * w, (j // 4) * h))
    sheet.resize((sheet.width // 2, sheet.height // 2), Image.LANCZOS).save(png, optimize=True)


if __name__ == "__main__":
    main()
