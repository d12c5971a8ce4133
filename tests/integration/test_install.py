"""Both addons install, upgrade twice and uninstall cleanly on real databases."""

import pytest

from .conftest import odoo_module, smf

ADDONS = ",".join(smf.ADDONS)


def install(dbname, *extra):
    rc, log = smf.run_odoo(
        [
            "-d",
            dbname,
            "-i",
            ADDONS,
            "--stop-after-init",
            f"--http-port={smf.free_port()}",
            "--log-level=info",
            *extra,
        ],
        check=False,
    )
    return rc, log


def assert_clean(rc, log, what):
    assert rc == 0, f"{what} failed:\n" + "\n".join(log.splitlines()[-30:])
    problems = smf.log_problems(log)
    assert not problems, f"{what} logged warnings/errors:\n" + "\n".join(problems)


def company_columns(dbname):
    rows = smf.psql_query(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_name = 'res_company' AND column_name LIKE 'sms_funnel_%'",
        dbname,
    )
    return {r[0] for r in rows}


@pytest.mark.parametrize("demo", [False, True], ids=["without-demo", "with-demo"])
def test_install_upgrade_twice_uninstall(make_db, demo):
    dbname = make_db(demo=demo)

    assert_clean(*install(dbname), "install")
    assert smf.installed_modules(dbname, smf.ADDONS) == set(smf.ADDONS)
    assert company_columns(dbname) == {
        "sms_funnel_sender_label",
        "sms_funnel_optout_mention",
        "sms_funnel_max_segments",
        "sms_funnel_regulated_sector",
    }
    groups = smf.psql_query(
        "SELECT name FROM ir_model_data WHERE module = 'sms_microfunnel' "
        "AND model = 'res.groups' ORDER BY name",
        dbname,
    )
    assert [g[0] for g in groups] == [
        "group_sms_funnel_manager",
        "group_sms_funnel_user",
    ]

    for attempt in (1, 2):
        rc, log = smf.run_odoo(
            [
                "-d",
                dbname,
                "-u",
                ADDONS,
                "--stop-after-init",
                f"--http-port={smf.free_port()}",
                "--log-level=info",
            ],
            check=False,
        )
        assert_clean(rc, log, f"upgrade #{attempt}")
        assert "Modules loaded." in log

    rc, log = odoo_module("uninstall", dbname, *reversed(smf.ADDONS))
    assert_clean(rc, log, "uninstall")
    assert smf.installed_modules(dbname, smf.ADDONS) == set()
    assert company_columns(dbname) == set(), "uninstall left our columns behind"
    leftovers = smf.psql_query(
        "SELECT count(*) FROM ir_model_data WHERE module IN "
        "('sms_microfunnel', 'sms_microfunnel_twilio')",
        dbname,
    )
    assert leftovers == [["0"]]
