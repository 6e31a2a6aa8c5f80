"""Why an object is skipped by the DICOM import: fixed codes and messages, never a header value."""

from __future__ import annotations

from synthscan.dicom.deidentify import MAX_SEQUENCE_DEPTH

REASONS: dict[str, str] = {
    "not-dicom": "not a DICOM file",
    "unreadable": "unreadable DICOM (corrupt or truncated header)",
    "dicomdir": "a DICOMDIR (an index of media, not an image); its images are imported from their own files",
    "float-pixels": "float pixel data: not counts",
    "no-pixels": "no pixel data (truncated, or not an image)",
    "too-deep": f"sequences nested deeper than {MAX_SEQUENCE_DEPTH}: refused as corrupt or hostile",
    "not-nm": "not an NM or secondary-capture image",
    "not-whole-body": "NM object is not a whole-body image (Image Type value 3 is not WHOLE BODY, or "
    "there is none and Body Part Examined is not WHOLEBODY)",
    "frame-vectors": "Detector Vector or Energy Window Vector does not match the number of frames",
    "no-photopeak": "no energy window is known to hold the 140.5 keV 99mTc photopeak",
    "no-detector-item": "a frame comes from a detector without a Detector Information item",
    "no-view": "a detector names no view (no View Code, orientation, Start Angle or vendor view name)",
    "view-conflict": "Start Angle and the vendor's private view name disagree",
    "same-view": "several photopeak frames show the same view",
    "sc-not-nm": "secondary capture whose Modality is not NM",
    "sc-multi-frame": "multi-frame secondary capture: its views cannot be told apart",
    "sc-one-body": "secondary capture shows one body, not an ANT|POST pair",
    "sc-duplicate": "secondary capture of a study whose NM whole-body object is imported (display values)",
    "missing-anterior": "missing the anterior view in its study",
    "missing-posterior": "missing the posterior view in its study",
    "ambiguous-pair": "its study holds several single-view objects per view",
    "malformed": "malformed header",
    "bad-marker": "malformed synthscan condition in Image Comments",
    "no-labels": "no label: no labels CSV (--labels)",
    "no-label-row": "no label: no row for its key in the labels CSV",
    "undecodable": "pixel data cannot be decoded (truncated, corrupt or unsupported compression)",
    "colour": "colour image: a display rendering, not counts",
    "samples": "more than one sample per pixel",
    "not-integer": "pixel values are not integers (not counts)",
    "negative": "negative pixel values are not counts",
    "monochrome1": "MONOCHROME1 (inverted display values, not counts); --allow-lossy inverts it back",
    "lossy": "lossy-compressed pixels are not exact counts; --allow-lossy imports them, flagged",
    "head-feet": "landscape view whose head end cannot be told from its feet",
    "not-storable": "counts do not fit the dataset (shape or range)",
}
"""Every reason an object is skipped for: a fixed code and its fixed message (no header value)."""


class Unusable(ValueError):
    """This object or scan cannot be imported; ``code`` is a key of :data:`REASONS`."""

    def __init__(self, code: str):
        super().__init__(REASONS[code])
        self.code = code
