"""``python -m loadtest.bench [flags]`` (``--help`` lists the flags)."""

import sys

from loadtest.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
