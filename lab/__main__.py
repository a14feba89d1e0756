"""``python -m lab`` runs the snaplab CLI (handy where the console script is not on PATH)."""

from lab.cli import main

main()
