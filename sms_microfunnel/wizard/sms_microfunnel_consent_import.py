# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Import consents collected elsewhere, with their provenance (managers).

The file is processed set-based: one search for suppressed numbers, one for
already imported events, one for the contacts, one ``create`` for the new
contacts and one ``_record`` call for all events.  A row without consent
date, source or wording is kept as an *unproven* consent (never marketable,
compliance book docs/compliance.md, "Consent"); an invalid or suppressed
number creates nothing.
"""

import base64
import binascii
import csv
import io
from datetime import datetime, timezone

from odoo import fields, models
from odoo.exceptions import UserError

from ..models.sms_microfunnel_consent_event import LEGAL_BASES, METHODS, wording_hash
from .sms_microfunnel_consent_record import (
    SOFT_OPT_IN_REFUSED_COUNTRIES,
    check_manager,
    number_country_code,
)

COLUMNS = (
    "phone",
    "name",
    "email",
    "consent_date",
    "source",
    "wording",
    "wording_version",
    "method",
    "legal_basis",
    "lang",
)
DATE_FORMATS = ("%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y")
# a cell longer than this is no consent data (a phone number far less)
CELL_MAX_LENGTH = 4096
PHONE_MAX_LENGTH = 32


def has_control_characters(value):
    """NUL and the other C0 controls but tab and newlines: no text we store
    may hold them (PostgreSQL refuses NUL outright)."""
    return any(ord(char) < 32 and char not in "\t\n\r" for char in value or "")


IMPORT_HELP = """\
UTF-8 CSV file, comma or semicolon separated, with a header line. Columns:
phone (mandatory; international form, or national with the default country),
name, email, consent_date (YYYY-MM-DD, YYYY-MM-DD HH:MM[:SS] or DD/MM/YYYY, UTC),
source (where the consent was collected), wording (the exact text agreed to),
wording_version, method (checkbox, keyword, link_click, verbal, written),
legal_basis (consent, soft_opt_in, pewc_tcpa, casl_express, casl_implied),
lang (e.g. fr_FR). A row without consent_date, source or wording is imported
as an unproven consent, which never allows marketing."""


def parse_consent_date(value):
    """Naive UTC datetime from an ISO or dd/mm/yyyy value, None if unreadable."""
    value = (value or "").strip()
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            continue
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed


class SmsMicrofunnelConsentImport(models.TransientModel):
    _name = "sms.microfunnel.consent.import"
    _description = "Import SMS Consents"

    file = fields.Binary("CSV File", attachment=False, help=IMPORT_HELP)
    filename = fields.Char()
    batch_label = fields.Char(
        "Import Batch",
        help="Names this import (e.g. 'trade-fair-2024'); every event gets the "
        "source reference 'import:<batch>'. Re-importing the same file with "
        "the same batch creates no duplicates.",
    )
    country_id = fields.Many2one(
        "res.country",
        "Default Country",
        help="Country of the national numbers of the file (e.g. France for 06…); "
        "the company's country when empty.",
    )
    company_id = fields.Many2one(
        "res.company", required=True, default=lambda self: self.env.company
    )
    state = fields.Selection(
        [("draft", "Draft"), ("done", "Done")], default="draft", required=True
    )
    imported_count = fields.Integer("Imported", readonly=True)
    unproven_count = fields.Integer("Unproven", readonly=True)
    invalid_count = fields.Integer("Invalid", readonly=True)
    suppressed_count = fields.Integer("Suppressed", readonly=True)
    duplicate_count = fields.Integer("Already Imported", readonly=True)
    result_summary = fields.Text(readonly=True)

    # -- reading the file ----------------------------------------------------

    def _read_rows(self):
        """[(line number, {column: value})] of the file; errors are UserErrors."""
        self.ensure_one()
        try:
            text = base64.b64decode(self.file or b"").decode("utf-8-sig")
        except (binascii.Error, ValueError) as error:
            raise UserError(
                self.env._("The file is not a UTF-8 text file: save it as CSV UTF-8.")
            ) from error
        lines = text.splitlines()
        if not lines or not lines[0].strip():
            raise UserError(self.env._("The file is empty: it needs a header line."))
        header_line = lines[0]
        delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        header = [h.strip().lower() for h in next(reader)]
        if any(has_control_characters(h) or len(h) > 64 for h in header):
            raise UserError(
                self.env._(
                    "The header line holds a control character or an overlong "
                    "column name: expected columns: %(columns)s.",
                    columns=", ".join(COLUMNS),
                )
            )
        if "phone" not in header:
            raise UserError(
                self.env._(
                    "The header has no 'phone' column. Expected columns: %(columns)s.",
                    columns=", ".join(COLUMNS),
                )
            )
        duplicated = {h for h in header if h and header.count(h) > 1}
        if duplicated:
            raise UserError(
                self.env._(
                    "These columns appear twice in the header: %(columns)s.",
                    columns=", ".join(sorted(duplicated)),
                )
            )
        rows = []
        try:
            for values in reader:
                if not any(v.strip() for v in values):
                    continue
                row = {
                    column: value.strip()
                    for column, value in zip(header, values, strict=False)
                    if column in COLUMNS
                }
                rows.append((reader.line_num, row))
        except csv.Error as error:
            raise UserError(
                self.env._(
                    "The CSV file is malformed near line %(line)s: %(error)s",
                    line=reader.line_num,
                    error=str(error),
                )
            ) from error
        if not rows:
            raise UserError(self.env._("The file has a header but no rows."))
        ignored = [h for h in header if h and h not in COLUMNS]
        return rows, ignored

    @staticmethod
    def _selection_key(value, selection, default):
        value = (value or "").strip().lower()
        for key, label in selection:
            if value in (key, label.lower()):
                return key
        return default

    # -- processing ------------------------------------------------------------

    def _prepare_row(self, line, row, country, now):
        """(E.164 number, event vals) or (None, error message)."""
        for column in COLUMNS:
            value = row.get(column) or ""
            if has_control_characters(value):
                return None, self.env._(
                    "the column “%(column)s” holds a control character (e.g. NUL)",
                    column=column,
                )
            if len(value) > CELL_MAX_LENGTH:
                return None, self.env._(
                    "the column “%(column)s” is longer than %(max)s characters",
                    column=column,
                    max=CELL_MAX_LENGTH,
                )
        number = False
        if 0 < len(row.get("phone") or "") <= PHONE_MAX_LENGTH:
            number = self.env["res.partner"]._phone_format(
                number=row.get("phone"), country=country, force_format="E164"
            )
        if not number:
            return None, self.env._(
                "invalid phone number “%(number)s”", number=row.get("phone", "")
            )
        date = None
        if row.get("consent_date"):
            date = parse_consent_date(row["consent_date"])
            if not date:
                return None, self.env._(
                    "unreadable consent date “%(date)s” (use YYYY-MM-DD or DD/MM/YYYY)",
                    date=row["consent_date"],
                )
            if date > now:
                return None, self.env._(
                    "consent date %(date)s is in the future", date=row["consent_date"]
                )
        legal_basis = self._selection_key(row.get("legal_basis"), LEGAL_BASES, None)
        if row.get("legal_basis") and not legal_basis:
            return None, self.env._(
                "unknown legal basis “%(basis)s”", basis=row.get("legal_basis")
            )
        if (
            legal_basis == "soft_opt_in"
            and number_country_code(number) in SOFT_OPT_IN_REFUSED_COUNTRIES
        ):
            return None, self.env._(
                "soft opt-in is not allowed for %(country)s numbers",
                country=number_country_code(number),
            )
        wording = row.get("wording") or False
        proven = bool(date and row.get("source") and wording)
        note = self.env._("Imported from line %(line)s", line=line)
        if row.get("source"):
            note += "\n" + self.env._(
                "Provenance: %(provenance)s", provenance=row["source"]
            )
        vals = {
            "event_type": "confirmed",
            "event_date": date or now,
            "number": number,
            "company_id": self.company_id.id,
            "legal_basis": legal_basis or "consent",
            "source": "import",
            "source_ref": self._source_ref(),
            "method": self._selection_key(row.get("method"), METHODS, "import"),
            "wording": wording,
            "wording_version": row.get("wording_version") or False,
            "lang": row.get("lang") or False,
            "proven": proven,
            "user_id": self.env.uid,
            "note": note,
        }
        return number, vals

    def _source_ref(self):
        return f"import:{(self.batch_label or '').strip()}"

    def _dedup_key(self, number, vals, dated):
        return (
            number,
            vals["event_date"] if dated else None,
            wording_hash(vals["wording"]),
        )

    def _existing_keys(self, numbers):
        events = (
            self.env["sms.microfunnel.consent.event"]
            .sudo()
            .search_fetch(
                [
                    ("number", "in", list(numbers)),
                    ("source_ref", "=", self._source_ref()),
                    ("company_id", "=", self.company_id.id),
                ],
                ["number", "event_date", "wording_sha256", "proven"],
            )
        )
        keys = set()
        for event in events:
            keys.add((event.number, event.event_date, event.wording_sha256 or False))
            if not event.proven:
                keys.add((event.number, None, event.wording_sha256 or False))
        return keys

    def _match_partners(self, rows_by_number):
        """{number: partner}: existing contacts, else new ones (one create)."""
        Partner = (
            self.env["res.partner"]
            .sudo()
            .with_context(
                tracking_disable=True, mail_create_nolog=True, mail_notrack=True
            )
        )
        found = (
            self.env["sms.microfunnel.consent"]
            .sudo()
            ._contacts_by_number(rows_by_number, self.company_id)
        )
        partners = {
            number: records[:1].with_env(Partner.env)
            for number, records in found.items()
        }
        langs = {code for code, _name in self.env["res.lang"].get_installed()}
        new_numbers = [n for n in rows_by_number if n not in partners]
        new_vals = []
        for number in new_numbers:
            row = rows_by_number[number]
            vals = {
                "name": row.get("name") or row.get("email") or number,
                "email": row.get("email") or False,
                "phone": number,
                "company_id": self.company_id.id,
            }
            if row.get("lang") in langs:
                vals["lang"] = row["lang"]
            new_vals.append(vals)
        for number, partner in zip(new_numbers, Partner.create(new_vals), strict=True):
            partners[number] = partner
        return partners

    def action_import(self):
        self.ensure_one()
        check_manager(self.env)
        if not (self.batch_label or "").strip():
            raise UserError(
                self.env._(
                    "Name the import batch: it is the provenance of every event."
                )
            )
        if has_control_characters(self.batch_label) or len(self.batch_label) > 256:
            raise UserError(
                self.env._(
                    "The import batch name must be a short text without control "
                    "characters."
                )
            )
        if not self.file:
            raise UserError(self.env._("Choose the CSV file to import."))
        rows, ignored = self._read_rows()
        country = self.country_id or self.company_id.country_id
        now = fields.Datetime.now()
        report = []
        prepared = []  # (line, number, vals, dated)
        for line, row in rows:
            number, result = self._prepare_row(line, row, country, now)
            if not number:
                report.append(
                    self.env._("Line %(line)s: %(error)s", line=line, error=result)
                )
                continue
            prepared.append((line, number, result, bool(row.get("consent_date")), row))
        invalid = len(report)
        numbers = {p[1] for p in prepared}
        suppressed = self.env["sms.microfunnel.suppression"]._suppressed(numbers)
        existing = self._existing_keys(numbers - suppressed)
        to_record = []
        rows_by_number = {}
        suppressed_count = duplicates = 0
        for line, number, vals, dated, row in prepared:
            if number in suppressed:
                suppressed_count += 1
                report.append(
                    self.env._(
                        "Line %(line)s: skipped, this number was erased at the "
                        "contact's request and stays suppressed",
                        line=line,
                    )
                )
                continue
            key = self._dedup_key(number, vals, dated)
            if key in existing:
                duplicates += 1
                continue
            existing.add(key)
            to_record.append(vals)
            rows_by_number.setdefault(number, row)
        partners = self._match_partners(rows_by_number)
        for vals in to_record:
            vals["partner_id"] = partners[vals["number"]].id
        events = self.env["sms.microfunnel.consent.event"]
        if to_record:
            events = events._record(to_record)
        unproven = len(events.filtered(lambda e: not e.proven))
        summary = [
            self.env._(
                "%(imported)s consents imported, %(unproven)s unproven (kept, never "
                "marketable), %(invalid)s invalid rows, %(suppressed)s suppressed "
                "numbers skipped, %(duplicates)s rows already imported.",
                imported=len(events) - unproven,
                unproven=unproven,
                invalid=invalid,
                suppressed=suppressed_count,
                duplicates=duplicates,
            )
        ]
        if ignored:
            summary.append(
                self.env._("Ignored columns: %(columns)s", columns=", ".join(ignored))
            )
        self.write(
            {
                "state": "done",
                "imported_count": len(events) - unproven,
                "unproven_count": unproven,
                "invalid_count": invalid,
                "suppressed_count": suppressed_count,
                "duplicate_count": duplicates,
                "result_summary": "\n".join(summary + report),
            }
        )
        return {
            "type": "ir.actions.act_window",
            "res_model": self._name,
            "res_id": self.id,
            "view_mode": "form",
            "target": "new",
            "name": self.env._("Consent Import Result"),
        }

    def action_view_events(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "sms_microfunnel.action_sms_consent_event"
        )
        action["domain"] = [("source_ref", "=", self._source_ref())]
        return action
