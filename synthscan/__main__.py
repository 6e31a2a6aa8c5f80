"""``python -m synthscan`` (and ``accelerate launch -m synthscan``): the command line."""

from synthscan.cli import main

if __name__ == "__main__":
    main(prog_name="synthscan")
