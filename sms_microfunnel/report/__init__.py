# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from . import sms_funnel_report
from . import sms_send_time_report
