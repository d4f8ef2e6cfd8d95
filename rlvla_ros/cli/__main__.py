"""`python -m rlvla_ros.cli ...`, the same as `rlvla ...`."""

import sys

from rlvla_ros.cli import main

sys.exit(main())
