"""``python -m twin.cli``: the same app as the ``twin`` console script."""

from twin.cli import main

main()
