# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
{
    "name": "SMS Micro-Funnels: Twilio",
    "summary": "Twilio channel for SMS micro-funnels: inbound replies, signatures, "
    "Messaging Services",
    "version": "19.0.1.0.0",
    "category": "Marketing/SMS Marketing",
    "website": "https://github.com/sms-microfunnel/sms_microfunnel",
    "author": "sms_microfunnel contributors",
    "maintainers": ["sms-microfunnel"],
    "development_status": "Alpha",
    "license": "LGPL-3",
    "installable": True,
    "depends": ["sms_microfunnel", "sms_twilio"],
    "external_dependencies": {"python": ["requests"]},
    "data": [
        "data/ir_cron_data.xml",
        "views/res_config_settings_views.xml",
    ],
}
