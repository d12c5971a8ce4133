# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
{
    "name": "SMS Micro-Funnels: Events",
    "summary": "SMS funnels on event registrations, timed around the event date",
    "version": "19.0.1.0.0",
    "category": "Marketing/SMS Marketing",
    "website": "https://github.com/sms-microfunnel/sms_microfunnel",
    "author": "sms_microfunnel contributors",
    "maintainers": ["sms-microfunnel"],
    "development_status": "Alpha",
    "license": "LGPL-3",
    "installable": True,
    "auto_install": True,
    "depends": ["sms_microfunnel", "event"],
    "data": ["views/event_event_views.xml"],
}
