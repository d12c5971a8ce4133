"""``python3 -m devtools.twilio_simulator --help`` (from the repository root)."""

import sys

from .simulator import main

sys.exit(main())
