"""DICOM import with de-identification and synthetic NM export."""
