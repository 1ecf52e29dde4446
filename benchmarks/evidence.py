"""Evidence harness: each paper's ablation table, measured under the paper's conditions, with
seeds and paired 95 % intervals, on any SynthWorld world.

    python benchmarks/evidence.py --paper {lmseg,dataseg,ms3,autounify,sentence,all} \\
        --world WORLD [--scale tiny|default] [--steps N] [--seeds 0,1,2] [--device cpu|cuda] \\
        [--jobs J] [--quick] --out DIR

WORLD is a built-in world (``default``, ``evidence``), a world YAML file, or a generated world
folder; every dataset's role (clean / noisy / boxes training data, held out, task) is read from
the generated ``datasets.yaml`` and ``relations.json``. Writes ``DIR/<paper>.json`` and
``DIR/<paper>.md``. The code lives in ``benchmarks/evidence_harness/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from evidence_harness.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
