"""Physics-based simulator of 99mTc whole-body bone scans."""
