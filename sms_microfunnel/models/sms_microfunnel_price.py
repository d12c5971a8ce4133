# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Estimated price of one SMS segment per destination country."""

import re
from functools import lru_cache

from odoo import api, fields, models
from odoo.fields import Domain

from odoo.addons.phone_validation.tools import phone_validation

from ..tools import run_cache

try:
    import phonenumbers
    from phonenumbers import COUNTRY_CODE_TO_REGION_CODE
except ImportError:  # declared in the manifest
    phonenumbers = None
    COUNTRY_CODE_TO_REGION_CODE = {}

_E164_RE = re.compile(r"\+[1-9]\d{6,14}")


@lru_cache(maxsize=65536)
def plain_region(number):
    """(region, checked, parsed number) read from the digits of a plain E.164
    ``number`` whose calling code is one country's or +1: what
    ``phonenumbers``' ``region_code_for_number`` answers once the number is
    parsed.  (None, False, None) when only parsing tells.  ``checked``: the
    lookup already matched the number against the region's patterns (a +1
    number of a region without leading digits), so it is valid there.
    Shared by the price and language lookups (one lookup per number)."""
    if phonenumbers is None or not number or not _E164_RE.fullmatch(number):
        return None, False, None
    for size in (1, 2, 3):
        calling_code = int(number[1 : 1 + size])
        regions = COUNTRY_CODE_TO_REGION_CODE.get(calling_code)
        if regions is None:
            continue
        national = number[1 + size :]
        if national.startswith("0") or (len(regions) > 1 and calling_code != 1):
            break  # leading zero or shared calling code
        parsed = phonenumbers.PhoneNumber(
            country_code=calling_code, national_number=int(national)
        )
        region = phonenumbers.region_code_for_number(parsed)
        if not region:
            break
        if len(regions) == 1:
            return region, False, parsed
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        return region, bool(metadata and metadata.leading_digits is None), parsed
    return None, False, None


def number_country_code(number):
    """ISO code of the country of ``number`` ("" when unknown or invalid).

    The same answer as ``phone_validation.phone_get_country_code_for_number``
    (which parses and formats the number twice) for a plain E.164 number
    whose calling code belongs to one country, or +1: the number is built
    from its digits and validated at most once.  Anything else takes Odoo's
    path.
    """
    if not number:
        return ""
    region, checked, parsed = plain_region(number)
    if region is None:
        return phone_validation.phone_get_country_code_for_number(number) or ""
    # is_valid_number finds the region again, then checks the number for it
    if checked or (
        phonenumbers.is_possible_number(parsed)
        and phonenumbers.is_valid_number_for_region(parsed, region)
    ):
        return region
    return ""


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
        code = number_country_code(number)
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
        return self._price_resolver(company)(code)

    @api.model
    def _price_resolver(self, company):
        """A function ``country code -> price row`` for ``company``: the
        prices are read once (one query), the countries when first asked,
        so a batch of messages costs the same as one."""
        candidates = self.sudo().browse(
            run_cache.memo(
                self.env,
                ("prices", company.id),
                lambda: tuple(
                    self.sudo()
                    .search(Domain("company_id", "in", [company.id, False]))
                    .ids
                ),
            )
        )
        candidates.fetch(["country_id", "company_id", "price", "currency_id"])
        ranked = candidates.sorted(lambda p: (not p.country_id, not p.company_id, p.id))
        by_code = {}

        def resolve(code):
            if code not in by_code:
                countries = {code.upper()} if code else set()
                by_code[code] = next(
                    (
                        price
                        for price in ranked
                        if not price.country_id
                        or (price.country_id.code or "").upper() in countries
                    ),
                    self.browse(),
                )
            return by_code[code]

        return resolve
