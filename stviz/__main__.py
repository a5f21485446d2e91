"""`python -m stviz`: the same as the `stviz` command (and what torchrun runs)."""

from stviz.cli import run

run()
