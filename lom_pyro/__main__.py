import sys

from lom_pyro.cli import main

sys.exit(main())
