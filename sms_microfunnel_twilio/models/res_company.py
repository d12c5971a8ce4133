# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.tools import SQL, ormcache

from ..tools.sms_api import SmsApiTwilioMicrofunnel

PUBLIC_BASE_URL_PARAM = "sms_microfunnel_twilio.public_base_url"
# the company fields inbound webhooks are routed and checked with
INBOUND_ROUTING_FIELDS = {
    "sms_provider",
    "sms_twilio_auth_token",
    "sms_twilio_messaging_service_sid",
    "sms_twilio_answers_keywords",
    "sms_twilio_number_ids",
}


class ResCompany(models.Model):
    _inherit = "res.company"

    sms_twilio_messaging_service_sid = fields.Char(
        string="Twilio Messaging Service SID",
        groups="base.group_system",
        help="The company's Twilio Messaging Service (MG…): inbound messages "
        "addressed to it are routed to this company, and with the sender "
        "'Messaging Service' SMS are sent through it.",
    )
    sms_twilio_sender_mode = fields.Selection(
        [
            ("number", "Sender numbers"),
            ("messaging_service", "Messaging Service"),
        ],
        string="Twilio Sender",
        default="number",
        required=True,
        help="Sender numbers: each SMS goes out From one of the company's Twilio "
        "numbers (the one of the destination's country first). Messaging "
        "Service: each SMS is sent with the Messaging Service SID and Twilio "
        "picks the sender from the service's pool (sticky sender, geographic "
        "match, Twilio's own opt-out handling).",
    )
    sms_twilio_max_mps = fields.Integer(
        string="Twilio Messages per Second",
        default=10,
        help="The most message creations sent to Twilio in any one second for "
        "this company (your account's or sender's throughput).",
    )
    sms_twilio_answers_keywords = fields.Boolean(
        string="Twilio Answers Standard Keywords",
        default=True,
        help="Twilio's default opt-out handling replies itself to single-word "
        "keywords (STOP, START, HELP…). Keep this on unless it is disabled in "
        "your Twilio account, so each contact gets exactly one confirmation.",
    )

    @api.constrains("sms_twilio_max_mps")
    def _check_sms_twilio_max_mps(self):
        for company in self:
            if company.sms_twilio_max_mps < 1:
                raise ValidationError(
                    self.env._(
                        "Twilio messages per second must be at least 1 (%(company)s).",
                        company=company.name,
                    )
                )

    @api.constrains("sms_twilio_messaging_service_sid")
    def _check_sms_twilio_messaging_service_sid(self):
        for company in self.sudo():
            sid = (company.sms_twilio_messaging_service_sid or "").strip()
            if sid and not (len(sid) == 34 and sid.startswith("MG") and sid.isalnum()):
                raise ValidationError(
                    self.env._(
                        "A Twilio Messaging Service SID is MG followed by 32 letters "
                        "or digits (%(company)s).",
                        company=company.name,
                    )
                )

    def _get_sms_api_class(self):
        self.ensure_one()
        if self.sms_provider == "twilio":
            return SmsApiTwilioMicrofunnel
        return super()._get_sms_api_class()

    def _sms_twilio_sending_service_sid(self):
        """The Messaging Service SID to send with, or None (send From a number)."""
        self.ensure_one()
        company = self.sudo()
        if company.sms_twilio_sender_mode != "messaging_service":
            return None
        sid = (company.sms_twilio_messaging_service_sid or "").strip()
        if not sid:
            raise UserError(
                self.env._(
                    "%(company)s sends through a Twilio Messaging Service but its SID "
                    "is not set (Settings > SMS Funnels > Twilio).",
                    company=company.name,
                )
            )
        return sid

    def _sms_twilio_public_base_url(self):
        self.ensure_one()
        configured = (
            self.env["ir.config_parameter"].sudo().get_param(PUBLIC_BASE_URL_PARAM)
        )
        return (configured or self.get_base_url()).rstrip("/")

    # -- inbound routing ----------------------------------------------------------

    @api.model_create_multi
    def create(self, vals_list):
        companies = super().create(vals_list)
        self.env.registry.clear_cache()  # the Twilio routes and tokens
        return companies

    def write(self, vals):
        result = super().write(vals)
        if INBOUND_ROUTING_FIELDS.intersection(vals):
            self.env.registry.clear_cache()  # the Twilio routes and tokens
        return result

    def unlink(self):
        result = super().unlink()
        self.env.registry.clear_cache()  # the Twilio routes and tokens
        return result

    @api.model
    @ormcache()
    def _sms_twilio_status_tokens(self):
        """{company id: Twilio auth token} of every company that has a
        token, whatever its provider now (the callbacks of the SMS it sent
        through Twilio still come).  Cached in every worker and cleared as
        ``_sms_twilio_inbound_routes`` is: a status callback checks its
        signature before reading anything.  Never modify the result."""
        return dict(
            self.env.execute_query(
                SQL(
                    "SELECT id, sms_twilio_auth_token FROM res_company "
                    "WHERE COALESCE(sms_twilio_auth_token, '') <> '' ORDER BY id"
                )
            )
        )

    @api.model
    @ormcache()
    def _sms_twilio_inbound_routes(self):
        """Where inbound messages go: ({Messaging Service SID: route},
        {receiving number: route}); a route is {company_id, token,
        answers_keywords, sequence}, the first company by id for a service,
        the first number by (sequence, company id) for a number.

        Cached in every worker (an inbound webhook then reads nothing before
        storing the message); any change of a Twilio number or of these
        company fields clears the cache of every worker before their next
        request (Odoo's cache signalling).  Never modify the result."""
        rows = self.env.execute_query_dict(
            SQL(
                """
                SELECT c.id AS company_id, c.sms_twilio_auth_token AS token,
                       c.sms_twilio_answers_keywords AS answers_keywords,
                       c.sms_twilio_messaging_service_sid AS service_sid,
                       n.number, n.sequence
                  FROM res_company c
             LEFT JOIN sms_twilio_number n ON n.company_id = c.id
                 WHERE c.sms_provider = 'twilio'
              ORDER BY n.sequence, c.id
                """
            )
        )

        def route(row, sequence):
            return {
                "company_id": row["company_id"],
                "token": row["token"],
                "answers_keywords": row["answers_keywords"],
                "sequence": sequence,
            }

        services, numbers = {}, {}
        for row in sorted(rows, key=lambda r: r["company_id"]):
            if row["service_sid"]:
                services.setdefault(row["service_sid"], route(row, 0))
        for row in rows:  # by sequence, then company
            if row["number"]:
                # NULL last, as PostgreSQL sorts it
                sequence = row["sequence"] if row["sequence"] is not None else 2**31
                numbers.setdefault(row["number"], route(row, sequence))
        return services, numbers
