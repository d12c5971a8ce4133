# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Run by ``setup/run`` inside ``odoo shell``: points the demo company at the
loopback Twilio simulator and starts a small welcome funnel, so a new user
sees the whole loop (send, delivery reports, a reply) without a Twilio
account.  The demo is French: French is installed, the demo company and its
contacts speak it, and ``SMF_LANG`` (default ``en_US``) sets the
administrator's interface language.  Idempotent.  Reads SMF_* variables from
the environment.
"""
# ruff: noqa: F821 - ``env`` is provided by ``odoo shell``

import os

odoo_url = os.environ["SMF_ODOO_URL"]
company = env.ref("base.main_company")

# French first: install the language (all installed modules' translations)
french = (
    env["res.lang"].with_context(active_test=False).search([("code", "=", "fr_FR")])
)
if not french.active:
    env["base.language.install"].create(
        {"lang_ids": [(6, 0, french.ids)]}
    ).lang_install()
admin_lang = os.environ.get("SMF_LANG") or "en_US"
if admin_lang != "en_US":
    env["res.lang"]._activate_lang(admin_lang)
env.ref("base.user_admin").lang = admin_lang
if company.name == "YourCompany":
    company.write(
        {"name": "Horizon Formation", "sms_funnel_sender_label": "Horizon Formation : "}
    )
company.partner_id.write({"lang": "fr_FR", "tz": "Europe/Paris"})
env["res.partner"].browse(
    [
        env.ref(f"sms_microfunnel.demo_partner_{name}").id
        for name in ("camille", "lucas", "emma", "hugo")
    ]
).write({"lang": "fr_FR"})
company.write(
    {
        "sms_provider": "twilio",
        "sms_twilio_account_sid": os.environ["SMF_TWILIO_SID"],
        "sms_twilio_auth_token": os.environ["SMF_TWILIO_TOKEN"],
        "country_id": env.ref("base.fr").id,
    }
)
if not company.sms_twilio_number_ids:
    env["sms.twilio.number"].create(
        {
            "company_id": company.id,
            "number": os.environ["SMF_TWILIO_NUMBER"],
            "country_id": env.ref("base.fr").id,
        }
    )
params = env["ir.config_parameter"]
params.set_param("sms_microfunnel_twilio.api_base_url", os.environ["SMF_TWILIO_URL"])
params.set_param("sms_microfunnel_twilio.public_base_url", odoo_url)
params.set_param("web.base.url", odoo_url)
params.set_param("web.base.url.freeze", "True")

funnel = env.ref("sms_microfunnel.demo_funnel_welcome", raise_if_not_found=False)
if not funnel:
    funnel = env["sms.microfunnel.campaign"].create(
        {"name": "Bienvenue (démo du simulateur)", "model_name": "res.partner"}
    )
    env["ir.model.data"].create(
        {
            "module": "sms_microfunnel",
            "name": "demo_funnel_welcome",
            "model": funnel._name,
            "res_id": funnel.id,
            "noupdate": True,
        }
    )
    env["sms.microfunnel.step"].create(
        {
            "campaign_id": funnel.id,
            "name": "Bienvenue",
            "message_class": "transactional",
            "body": "Bonjour {{ object.name }}, bienvenue ! Répondez STOP pour ne "
            "plus recevoir nos SMS.",
        }
    )
    funnel.action_start()
    demo = env["res.partner"].browse(
        [
            env.ref(f"sms_microfunnel.demo_partner_{name}").id
            for name in ("camille", "lucas", "emma")
        ]
    )
    funnel._enroll(demo)
# what setup/run compares to skip this script on the next run
params.set_param("smf_setup.demo_wiring", os.environ.get("SMF_DEMO_WIRING", ""))
env.cr.commit()
print("demo company wired to the Twilio simulator")
