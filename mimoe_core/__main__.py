import sys

from mimoe_core.cli import main

sys.exit(main())
