"""Exactly-once Twilio sending through SIGKILLs: the short kill test.

Two real Odoo servers (two cron threads each: four parallel senders) send the
queue to the loopback Twilio simulator (its own process, recording every
request); one of them is killed with SIGKILL at random moments while sending
and started again. At the end the simulator has every message exactly once.
The long version, with its figures: ``benchmarks/twilio_kill.py``.
"""

import importlib.util
import re
from pathlib import Path

from .conftest import REPO, smf

_spec = importlib.util.spec_from_file_location(
    "smf_twilio_kill", REPO / "benchmarks" / "twilio_kill.py"
)
kill = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kill)

OUR_ERROR = re.compile(r" (ERROR|CRITICAL) .*sms_microfunnel_twilio")


def test_sigkilled_servers_send_every_sms_exactly_once(make_db):
    dbname = make_db(demo=False)
    smf.run_odoo(
        [
            "-d",
            dbname,
            "-i",
            "sms_microfunnel_twilio",
            "--stop-after-init",
            f"--http-port={smf.free_port()}",
            "--log-level=warn",
        ]
    )
    args = kill.parse_args(
        [
            "--messages=400",
            "--kills=4",
            "--servers=2",
            "--cron-threads=2",
            "--mps=50",
            "--crash-grace=2",
            "--max-delay=1.5",
            "--timeout=420",
            "--seed=18",
        ]
    )
    lines = []
    figures = kill.run(args, dbname, out=lines.append)
    kill.report(figures, out=lines.append)
    summary = "\n".join(lines)
    assert figures["kills"] >= 2, summary
    assert figures["left_waiting"] == 0, summary
    assert figures["duplicates"] == 0, summary
    assert figures["lost"] == 0, summary
    assert figures["accepted"] + figures["not_sent_with_reason"] == 400, summary
    for log in Path(figures["logs"]).glob("odoo-*.log"):
        errors = [ln for ln in log.read_text().splitlines() if OUR_ERROR.search(ln)]
        assert not errors, f"{log}:\n" + "\n".join(errors[:20])
