#!/usr/bin/env python3
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Twilio sending throughput: core ``sms_twilio`` against ``sms_microfunnel_twilio``.

Both send the same SMS from ``sms.sms`` through Odoo's whole send path (ORM,
trackers, result handling) to the same loopback Twilio simulator
(``sms_microfunnel_twilio/tools/twilio_simulator.py``), which answers each
message creation after ``--latency`` seconds, as Twilio's API does over the
Internet. Core sends one request after the other in batches of 10 (its
default ``sms_twilio.session.batch.size``); ours sends concurrently, paced at
the company's messages-per-second cap (``--mps``).

Core posts to the hard-coded ``https://api.twilio.com``: this script (and only
this script) rewrites that host to the simulator in ``requests``. Ours is
pointed at the simulator by its system parameter. Nothing is committed: the
run happens in one transaction that is rolled back.

Usage (Odoo 19's Python; PostgreSQL as for ``setup/test``)::

    python3 benchmarks/twilio_throughput.py                 # throwaway database
    python3 benchmarks/twilio_throughput.py --db smf_demo   # an existing one
    python3 benchmarks/twilio_throughput.py --latency 0.2 --messages 500 --mps 300

Without ``--db``, a database with both addons is built from ``setup/test``'s
template (about 20 s) and dropped at the end.
"""

import argparse
import importlib.util
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ACCOUNT = "AC" + "b" * 32
TOKEN = "benchmark-auth-token"
SENDER = "+33700000009"


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="existing database with both addons")
    parser.add_argument("--messages", type=int, default=200, help="SMS per run")
    parser.add_argument(
        "--latency", type=float, default=0.1, help="simulator answer delay (s)"
    )
    parser.add_argument(
        "--mps", type=int, default=1000, help="our messages-per-second cap"
    )
    parser.add_argument("--workers", type=int, default=32, help="our HTTP threads")
    parser.add_argument(
        "--core-messages",
        type=int,
        default=0,
        help="SMS for the core run (default: --messages, at most 100)",
    )
    return parser.parse_args(argv)


def redirect_twilio(base_url):
    """Send core's ``https://api.twilio.com`` requests to the simulator."""
    import requests  # noqa: PLC0415 - only once Odoo's environment is set up

    original = requests.Session.send

    def send(session, request, **kwargs):
        if request.url.startswith("https://api.twilio.com/"):
            request.url = base_url + request.url[len("https://api.twilio.com") :]
        return original(session, request, **kwargs)

    requests.Session.send = send


def max_per_second(stamps):
    stamps = sorted(stamps)
    best, start = 0, 0
    for end, stamp in enumerate(stamps):
        while stamp - stamps[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def measure(env, sim, label, count, send, latency):
    company = env.company
    records = env["sms.sms"].create(
        [
            {
                "number": f"+336{index:08d}",
                "body": f"Benchmark message {index}",
                "record_company_id": company.id,
            }
            for index in range(count)
        ]
    )
    env.flush_all()
    sim.reset()
    sim.set_latency(latency)
    started = time.perf_counter()
    send(records)
    env.flush_all()
    elapsed = time.perf_counter() - started
    env.invalidate_all()
    states = set(records.mapped("state"))
    creates = sim.creates()
    if states != {"pending"} or len(creates) != count:
        raise SystemExit(
            f"{label}: {len(creates)} creates for {count} SMS, states {states}"
        )
    rate = count / elapsed
    peak = max_per_second(c["time"] for c in creates)
    print(
        f"{label:<28} {count:>5} SMS in {elapsed:7.2f} s = {rate:8.1f} msgs/s "
        f"(busiest second at the simulator: {peak} creates)"
    )
    return rate


def run(args, dbname):
    import odoo  # noqa: PLC0415
    from odoo.tools import config  # noqa: PLC0415

    smf = load("smf_setup", REPO / "setup" / "smf.py")
    config.parse_config(
        [
            "-d",
            dbname,
            f"--addons-path={smf.addons_path()}",
            "--log-level=warn",
            "--http-interface=127.0.0.1",
            *smf.db_options(),
        ]
    )
    from odoo.modules.registry import Registry  # noqa: PLC0415

    from odoo.addons.sms_microfunnel_twilio.tools import sms_api  # noqa: PLC0415
    from odoo.addons.sms_microfunnel_twilio.tools.twilio_simulator import (  # noqa: PLC0415
        TwilioSimulator,
    )
    from odoo.addons.sms_twilio.tools.sms_api import SmsApiTwilio  # noqa: PLC0415

    registry = Registry(dbname)
    with TwilioSimulator(ACCOUNT, TOKEN) as sim, registry.cursor() as cr:
        redirect_twilio(sim.base_url)
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
        env["ir.config_parameter"].set_param(sms_api.API_BASE_URL_PARAM, sim.base_url)
        env["ir.config_parameter"].set_param(sms_api.WORKERS_PARAM, args.workers)
        env.company.write(
            {
                "sms_provider": "twilio",
                "sms_twilio_account_sid": ACCOUNT,
                "sms_twilio_auth_token": TOKEN,
                "sms_twilio_sender_mode": "number",
                "sms_twilio_max_mps": args.mps,
                "sms_twilio_number_ids": [
                    (5, 0),
                    (0, 0, {"number": SENDER, "country_id": env.ref("base.fr").id}),
                ],
            }
        )

        def core_send(records):
            core_api = SmsApiTwilio(env)
            core_api._set_company(env.company)
            for batch in odoo.tools.split_every(10, records.ids):
                records.browse(batch).with_context(sms_api=core_api)._send()

        def our_send(records):
            records.send()

        core_count = args.core_messages or min(args.messages, 100)
        core = measure(env, sim, "core sms_twilio", core_count, core_send, args.latency)
        ours = measure(
            env, sim, "sms_microfunnel_twilio", args.messages, our_send, args.latency
        )
        cr.rollback()
    print(f"speed-up: {ours / core:.1f}x (latency {args.latency:.3f} s)")
    return ours / core


def main(argv=None):
    args = parse_args(argv)
    command = "python3 benchmarks/twilio_throughput.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    print(f"reproduce with: {command.strip()}")
    if args.db:
        run(args, args.db)
        return 0
    smf = load("smf_setup", REPO / "setup" / "smf.py")
    dbname = f"smf_bench_{os.getpid()}"
    print(f"building throwaway database {dbname}…", flush=True)
    log = Path(tempfile.gettempdir()) / f"{dbname}.log"
    problems = smf.install_for_tests(dbname, log)
    if any("exited" in p for p in problems):
        raise SystemExit(f"installing the addons failed, see {log}")
    try:
        run(args, dbname)
    finally:
        smf.run_odoo_db("drop", dbname)
    return 0


if __name__ == "__main__":
    sys.exit(main())
