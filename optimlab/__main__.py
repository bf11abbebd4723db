"""``python -m optimlab``: the same as the ``optimlab`` command."""

from optimlab.cli import main

main()
