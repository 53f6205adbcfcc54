"""`python -m kpictl.cli`."""

from kpictl.cli import main

main()
