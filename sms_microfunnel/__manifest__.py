# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
{
    "name": "SMS Micro-Funnels",
    "summary": "Compliant multi-step SMS journeys for Odoo CRM: consent, send windows, "
    "funnels and metrics",
    "version": "19.0.1.0.0",
    "category": "Marketing/SMS Marketing",
    "website": "https://github.com/sms-microfunnel/sms_microfunnel",
    "author": "sms_microfunnel contributors",
    "maintainers": ["sms-microfunnel"],
    "development_status": "Alpha",
    "license": "LGPL-3",
    "application": True,
    "installable": True,
    "depends": [
        "base_automation",
        "crm",
        "link_tracker",
        "mass_mailing_sms",
        "phone_validation",
        "sms",
        "utm",
    ],
    "external_dependencies": {"python": ["phonenumbers"]},
    "data": [
        "security/sms_microfunnel_security.xml",
        "security/ir.model.access.csv",
        "data/ir_cron_data.xml",
        "views/res_config_settings_views.xml",
        "views/sms_consent_views.xml",
        "views/sms_inbound_views.xml",
        "views/sms_microfunnel_menus.xml",
        "views/sms_consent_templates.xml",
        "data/ir_cron_retention.xml",
        "views/sms_retention_views.xml",
        "wizard/sms_consent_record_views.xml",
        "wizard/sms_consent_import_views.xml",
        "wizard/sms_contact_erase_views.xml",
    ],
    "demo": [
        "demo/sms_microfunnel_demo.xml",
    ],
    "assets": {
        "web.assets_tests": [
            "sms_microfunnel/static/tests/tours/**/*",
        ],
    },
}
