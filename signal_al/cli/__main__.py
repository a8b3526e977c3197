"""``python -m signal_al.cli`` (e.g. under ``accelerate launch ... -m signal_al.cli train-generator``)."""

import sys

from signal_al.cli import main

sys.exit(main())
