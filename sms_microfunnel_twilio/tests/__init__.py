# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from . import test_inbound_webhook
from . import test_twilio_signature_odoo
from . import test_sending
from . import test_error_mapping
from . import test_status_callbacks
from . import test_webhook_concurrency
from . import test_webhook_fuzz
from . import test_status_funnel
