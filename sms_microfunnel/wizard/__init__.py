# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from . import sms_consent_record
from . import sms_consent_import
from . import sms_contact_erase
from . import sms_funnel_simulate
from . import sms_preflight
from . import sms_funnel_launch
