"""The entry point every sweep agent launches: `python -m agent.train --name=value ...`.

Sweeps registered on W&B name this module in their command (or `program: agent/train.py`), so it
stays here; the trial program itself lives in `agent.trial`.
"""

import sys

from agent.trial.train import main

if __name__ == "__main__":
    sys.exit(main())
