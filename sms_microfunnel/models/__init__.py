# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from . import res_company
from . import res_config_settings
from . import sms_suppression
from . import sms_consent_event
from . import sms_consent
from . import sms_consent_mixin
from . import res_partner
from . import crm_lead
from . import sms_retention
from . import sms_inbound
