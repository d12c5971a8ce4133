# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from . import sms_microfunnel_consent_record
from . import sms_microfunnel_consent_import
from . import sms_microfunnel_contact_erase
from . import sms_microfunnel_simulate
from . import sms_microfunnel_simulate_line
from . import sms_microfunnel_send_test
from . import sms_microfunnel_preflight
from . import sms_microfunnel_preflight_line
from . import sms_microfunnel_launch
