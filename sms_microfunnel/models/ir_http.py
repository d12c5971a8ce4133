# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import models
from odoo.http import request


class IrHttp(models.AbstractModel):
    _inherit = "ir.http"

    @classmethod
    def _serve_fallback(cls):
        """A path with a NUL or another control character is nobody's file:
        404 at once.  (Odoo would look it up among the attachments and fail on
        the NUL, which PostgreSQL refuses: a 500 for a link such as
        ``/sms/unsubscribe/%00``.)"""
        path = request.httprequest.path
        if any(ord(char) < 32 for char in path):
            return None
        return super()._serve_fallback()
