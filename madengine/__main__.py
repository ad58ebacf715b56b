"""``python -m madengine ...`` is the ``madengine`` console script."""

from madengine.program import main

main()
