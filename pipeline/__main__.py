"""``python -m pipeline``: see ``pipeline.cli``."""

import sys

from pipeline.cli import main

if __name__ == "__main__":  # corpus passes start worker processes that import this module again
    sys.exit(main())
