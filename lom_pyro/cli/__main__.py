"""``python -m lom_pyro.cli`` (what ``torchrun ... -m lom_pyro.cli train`` starts on each rank)."""

import sys

from lom_pyro.cli import main

if __name__ == "__main__":
    sys.exit(main())
