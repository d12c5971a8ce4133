"""The loopback Twilio simulator used by ``setup/run``, the benchmarks and the
end-to-end tests (see :mod:`devtools.twilio_simulator.simulator`)."""

from .simulator import (
    API_ERRORS,
    API_VERSION,
    DELIVERY_ERRORS,
    TwilioSimulator,
    count_segments,
    main,
)

__all__ = [
    "API_ERRORS",
    "API_VERSION",
    "DELIVERY_ERRORS",
    "TwilioSimulator",
    "count_segments",
    "main",
]
