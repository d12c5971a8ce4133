"""The product's pure tool modules, imported without their addons.

``sms_microfunnel/tools/sms_encoding.py`` and
``sms_microfunnel_twilio/tools/twilio_signature.py`` use the standard library
only, but importing them through their addon package would run the addon's
``__init__`` and so import Odoo. This package's search path is those two
``tools`` folders: ``from devtools.twilio_simulator.product import
sms_encoding`` imports the product's own file (never a copy of it).
"""

from pathlib import Path

_REPO = Path(__file__).resolve().parents[3]

# the search path of this package: the two tools folders, on purpose
__path__ = [
    str(_REPO / "sms_microfunnel" / "tools"),
    str(_REPO / "sms_microfunnel_twilio" / "tools"),
]
