"""The body in a view's counts: where its head is (for views whose header does not say), and
whether a secondary capture shows two bodies side by side.

**Head end from the body**, for views whose header does not give it (or whose vectors would leave
the view landscape: they describe another image).  The body's long axis is the axis of the larger
count-weighted spread (a landscape view is turned a quarter); the view is then aligned head-to-feet
with the other view by their row profiles (either way round), which settles it when the other
view's header gives its head end.  Otherwise the head end is the end whose outer 15 % of the body
holds at least :data:`HEAD_RATIO` times the counts of the other in the aligned views' summed
profile (skull against feet; on simulated scans of every site the ratio is ≥ 1.5), so the two views
always face the same way.  The import skips a landscape view whose head end is not evident; a portrait
view then stays as stored (head first, the vendors' convention).  A header's head end is never
overruled by the counts (a foot injection or an extravasation can make the feet the hotter end);
where the two disagree, the view's ``meta`` says so.  Turns are rotations, never mirror images,
and are recorded.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

HEAD_RATIO = 1.25
"""Counts of the head end over the feet end (outer 15 % of the body) needed to tell them apart."""


def head_up_turns(view: np.ndarray) -> int | None:
    """Quarter turns (:func:`numpy.rot90`) that put the body's head at the top, from the body itself.

    ``None`` when the head end is not evident (module doc: long axis from the count-weighted spread,
    head end from the counts of the outer 15 % of the body at each end).
    """
    turns = _long_axis_turns(view)
    end = _head_end(_profile(np.rot90(view, turns)))
    return None if end is None else turns + end


def _long_axis_turns(view: np.ndarray) -> int:
    """0, or 1 for a landscape body: its long axis is the one of the larger count-weighted spread."""
    counts = view.astype(np.float64)
    total = counts.sum()
    if total <= 0:
        return 0
    rows, columns = np.indices(counts.shape)
    spread = [float((counts * (axis - (counts * axis).sum() / total) ** 2).sum()) for axis in (rows, columns)]
    return 0 if spread[0] >= spread[1] else 1


def _profile(upright: np.ndarray) -> np.ndarray:
    """Counts per row of an upright view, as a share of its total (views of any count level add up)."""
    profile = upright.astype(np.float64).sum(axis=1)
    return profile / max(profile.sum(), 1.0)


def _head_end(profile: np.ndarray) -> int | None:
    """0 when the head end of a row profile is first, 2 when it is last, ``None`` when not evident."""
    if profile.sum() <= 0:
        return None
    smooth = ndimage.uniform_filter1d(profile, size=max(1, profile.size // 64))
    body = np.flatnonzero(smooth > 0.05 * smooth.max())
    top, bottom = int(body[0]), int(body[-1]) + 1
    end = max(1, round(0.15 * (bottom - top)))
    head, feet = profile[top : top + end].sum(), profile[bottom - end : bottom].sum()
    if head >= HEAD_RATIO * feet:
        return 0
    if feet >= HEAD_RATIO * head:
        return 2
    return None


def _on_length(profile: np.ndarray, size: int) -> np.ndarray:
    return np.interp(np.linspace(0, 1, size), np.linspace(0, 1, profile.size), profile)


def two_bodies(image: np.ndarray) -> bool:
    """Whether a capture shows two bodies side by side: a near-empty gap around its midline.

    The column profile's minimum in the middle tenth must be under a fifth of each half's peak (on
    simulated scans: at most 0.09 for ANT|POST pairs, at least 0.36 for one body).
    """
    profile = ndimage.uniform_filter1d(image.astype(np.float64).sum(axis=0), size=3)
    half = profile.size // 2
    peaks = min(profile[:half].max(initial=0), profile[half:].max(initial=0))
    middle = profile[int(0.45 * profile.size) : int(0.55 * profile.size) + 1]
    return peaks > 0 and middle.size > 0 and middle.min() < 0.2 * peaks


def head_up(
    header_turns: dict[str, int | None], stored: dict[str, np.ndarray]
) -> dict[str, tuple[int | None, str]]:
    """Per view, the quarter turns that put the head at the top and where they came from (module doc).

    A header's turns count when they leave the view portrait (else its vectors describe another
    image). Views without them are first aligned head-to-feet with a view that has them, or with
    each other, by their row profiles (a body's anterior and posterior share one), then turned
    by the head end of their summed profiles, so both views always face the same way.
    """
    found: dict[str, tuple[int | None, str]] = {}
    for name, turns in header_turns.items():
        view = stored[name]
        if turns is not None and portrait(np.rot90(view, turns)):
            by_body = head_up_turns(view)
            note = "" if by_body in (None, turns) else " (the body's counts point the other way: hot feet?)"
            found[name] = (turns, "from the header" + note)
    silent = [name for name in header_turns if name not in found]
    if not silent:
        return found
    upright = {name: np.rot90(stored[name], turns) for name, (turns, _) in found.items()}
    axes = {name: _long_axis_turns(stored[name]) for name in silent}
    upright.update({name: np.rot90(stored[name], axes[name]) for name in silent})
    reference = _profile(upright[next(iter(found), silent[0])])
    flips, aligned = {}, []
    for name in silent:
        profile = _on_length(_profile(upright[name]), reference.size)
        same, reversed_ = np.corrcoef(reference, profile)[0, 1], np.corrcoef(reference, profile[::-1])[0, 1]
        flips[name] = 0 if not reversed_ > same else 2
        aligned.append(profile[::-1] if flips[name] else profile)  # a half turn reverses the row profile
    if found:
        note = f"aligned with the {next(iter(found))} view's header"
        return found | {name: (axes[name] + flips[name], note) for name in silent}
    end = _head_end(np.sum(aligned, axis=0))
    if end is None:
        return {name: (None, "as stored (not evident from the body)") for name in silent}
    return {name: ((axes[name] + flips[name] + end) % 4, "from the body") for name in silent}


def portrait(view: np.ndarray) -> bool:
    """At least as tall as wide: how a whole-body view stands head-up."""
    return view.shape[0] >= view.shape[1]
