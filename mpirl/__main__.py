"""``python -m mpirl`` is the ``mpirl`` command."""
import sys

from mpirl.cli import main

sys.exit(main())
