# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Estimated price of one SMS segment per destination country."""

from odoo import api, fields, models
from odoo.fields import Domain

from odoo.addons.phone_validation.tools import phone_validation


class SmsMicrofunnelPrice(models.Model):
    _name = "sms.microfunnel.price"
    _description = "SMS Price per Segment"
    _order = "country_id, company_id, id"

    country_id = fields.Many2one(
        "res.country",
        help="Destination country of the number. Leave empty for the fallback "
        "price used when the destination country has no price of its own.",
    )
    price = fields.Float(
        string="Price per Segment",
        digits=(16, 5),
        required=True,
        help="Estimated price of one SMS segment (160 GSM-7 or 70 Unicode "
        "characters, 153/67 once concatenated). The shipped prices are rough "
        "estimates: replace them with your provider's price list.",
    )
    currency_id = fields.Many2one(
        "res.currency",
        required=True,
        default=lambda self: self.env.company.currency_id,
    )
    company_id = fields.Many2one(
        "res.company",
        help="Leave empty to share this price with every company.",
    )
    active = fields.Boolean(default=True)
    note = fields.Char(
        translate=True, help="Where the price comes from, e.g. the provider's page."
    )

    _country_company_unique = models.UniqueIndex(
        "(COALESCE(country_id, 0), COALESCE(company_id, 0)) WHERE active",
        "There is already a price for this country and company.",
    )
    _price_positive = models.Constraint(
        "CHECK(price >= 0)",
        "An SMS price cannot be negative.",
    )

    @api.depends("country_id", "price", "currency_id")
    def _compute_display_name(self):
        for price in self:
            country = price.country_id.name or self.env._("Other countries")
            price.display_name = f"{country} ({price.price:g} {price.currency_id.name})"

    @api.model
    def _country_code(self, number, fallback_country=None):
        """ISO code of the country of an E.164 ``number``, else of the fallback."""
        code = ""
        if number:
            code = phone_validation.phone_get_country_code_for_number(number) or ""
        if not code and fallback_country:
            code = fallback_country.code or ""
        return code.upper()

    @api.model
    def _get_price(self, number=None, company=None, country=None):
        """The price row that applies to ``number`` for ``company``.

        Most specific first: the number's country for the company, the
        country for every company, the company's fallback (no country), the
        shared fallback.  ``country`` is used when the number tells no
        country.  Returns an empty recordset when nothing applies.
        """
        company = company or self.env.company
        code = self._country_code(number, fallback_country=country)
        country_rec = (
            self.env["res.country"].search([("code", "=", code)], limit=1)
            if code
            else self.env["res.country"]
        )
        domain = Domain("company_id", "in", [company.id, False]) & Domain(
            "country_id", "in", [country_rec.id, False] if country_rec else [False]
        )
        candidates = self.sudo().search(domain)
        if not candidates:
            return candidates
        return candidates.sorted(lambda p: (not p.country_id, not p.company_id, p.id))[
            :1
        ]
