"""DICOM in and out: import of vendor whole-body NM studies with PS3.15 de-identification
(:mod:`.read`; views and head end by :mod:`.views` and :mod:`.body`; skip reasons in
:mod:`.reasons`; :mod:`.deidentify`) and export of synthetic scans as NM Image objects (:mod:`.write`).

Modules are imported directly (``from synthscan.dicom.write import study_to_dicom``) so that
importing the package stays cheap.
"""
