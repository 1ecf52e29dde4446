"""``python -m babelseg`` (also what ``torchrun -m babelseg`` runs)."""

import sys

from babelseg.cli.main import main

sys.exit(main())
