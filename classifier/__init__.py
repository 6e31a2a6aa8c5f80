"""Two-view bone-scan classifier (metastasis, amyloidosis) and domain feature extractor."""
