"""``python -m loadtest.bench [flags]`` from the repository root (``--help`` lists the flags)."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The repository root goes first on sys.path, so that ``loadtest`` and ``tests.harness`` import
# however this is started. Run as a script (``python loadtest/bench``), sys.path[0] is this
# folder, whose module names (cli, common, report, ...) must not shadow others: replace it.
if sys.path and Path(sys.path[0] or ".").resolve() == HERE:
    sys.path[0] = str(HERE.parents[1])
else:
    sys.path.insert(0, str(HERE.parents[1]))

from loadtest.bench.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
