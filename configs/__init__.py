"""Stage configs shipped with synthscan (YAML)."""
