# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from . import test_consent_core
from . import test_security
from . import test_tools
from . import test_settings
from . import test_ui
from . import test_inbound
from . import test_consent_pages
from . import test_consent_manual_import
from . import test_erasure_retention
from . import test_message_rules
from . import test_js_counter
from . import test_policy
from . import test_gate_preflight
from . import test_funnel_report
