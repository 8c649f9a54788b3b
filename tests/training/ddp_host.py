"""``mimoe`` under torchrun as if on the host named by ``MIMOE_TEST_HOSTNAME``: an entry point
for tests that simulate nodes of different hosts on one machine. Run as
``torchrun ... ddp_host.py train ...``.
"""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace

from mimoe_core.cli import main
from mimoe_core.training import distributed

if __name__ == "__main__":
    distributed.socket = SimpleNamespace(gethostname=lambda: os.environ["MIMOE_TEST_HOSTNAME"])
    sys.exit(main(sys.argv[1:]))
