# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import api, models


class EventRegistration(models.Model):
    """Registrations get a sanitised phone number (``mail.thread.phone``) and
    an SMS consent status, so that funnels can target them directly."""

    _name = "event.registration"
    # mail.thread.phone first: a registration already lists mail.thread, which
    # must come after it in the method resolution order
    _inherit = [
        "mail.thread.phone",
        "event.registration",
        "sms.microfunnel.consent.mixin",
    ]

    @api.model_create_multi
    def create(self, vals_list):
        registrations = super().create(vals_list)
        registrations._sms_funnel_enroll_confirmed()
        return registrations

    def write(self, vals):
        result = super().write(vals)
        if vals.get("state") == "open":
            self._sms_funnel_enroll_confirmed()
        elif vals.get("state") == "cancel" or vals.get("active") is False:
            self._sms_funnel_exit("registration_canceled")
        return result

    def _sms_funnel_enroll_confirmed(self):
        """Enroll confirmed registrations in the running funnels of their event."""
        confirmed = self.filtered(lambda r: r.state == "open" and r.active)
        for event, registrations in confirmed.grouped("event_id").items():
            funnels = event.sudo().sms_microfunnel_ids.filtered(
                lambda f: f.state == "running" and f.model_name == self._name
            )
            for funnel in funnels:
                funnel._enroll(registrations.sudo())

    def _sms_funnel_exit(self, reason):
        enrollments = (
            self.env["sms.microfunnel.enrollment"]
            .sudo()
            .search(
                [
                    ("res_model", "=", self._name),
                    ("res_id", "in", self.ids),
                    ("state", "=", "active"),
                ]
            )
        )
        enrollments._exit(reason)
