# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from . import event_registration
from . import event_event
from . import sms_microfunnel_enrollment
from . import sms_microfunnel_trace
