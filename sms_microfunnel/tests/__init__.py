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
