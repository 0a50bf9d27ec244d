"""``python -m pipeline.cli``: the same as the ``forewarn`` command."""

from pipeline.cli import main

main()
