"""The loopback Twilio simulator used by ``setup/run``, the benchmarks and the
end-to-end tests (see :mod:`devtools.twilio_simulator.simulator`)."""

from .simulator import *  # noqa: F403 - the package's API is its module's
from .simulator import __all__
