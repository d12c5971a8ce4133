# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from . import res_company
from . import res_config_settings
from . import sms_sms
from . import sms_tracker
from . import sms_twilio_number
from . import mail_notification
