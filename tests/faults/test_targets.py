"""Faults on the probed side, seen through the real daemon: a target that accepts and never
answers, a name that does not resolve, and TLS certificates that are self-signed, expired or
for another host. After each the agent is running, /status names the problem per check, the
log says it, and a healthy check beside them keeps its rhythm.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.faults.blackhole import Blackhole
from tests.faults.certs import Pki, TlsServer
from tests.faults.daemon import Daemon
from tests.support.procs import wait_for

pytestmark = pytest.mark.integration

CONFIG = """
agent:
  listen: 127.0.0.1:{port}
  history: sqlite:///{db}
  self_check_interval: 1s
  log_format: json
checks:
  - {{type: test_fast, name: fast, interval: 500ms}}
  - {{type: model_endpoint, name: blackhole, protocol: http, url: "http://127.0.0.1:%(hole)d/", interval: 1s, request_timeout: 1s, timeout: 5s}}
  - {{type: model_endpoint, name: nxdomain, protocol: http, url: "http://ranker.mlwarden.invalid:8080/", interval: 1s}}
  - {{type: model_endpoint, name: selfsigned, protocol: http, url: "%(self)s", interval: 1s}}
  - {{type: model_endpoint, name: expired, protocol: http, url: "%(expired)s", ca_bundle: "%(ca)s", interval: 1s}}
  - {{type: model_endpoint, name: wronghost, protocol: http, url: "%(wrong)s", ca_bundle: "%(ca)s", interval: 1s}}
  - {{type: model_endpoint, name: goodtls, protocol: http, url: "%(good)s", ca_bundle: "%(ca)s", interval: 1s}}
"""


def test_hanging_unresolvable_and_bad_tls_targets_are_reported_and_the_agent_runs_on(tmp_path):
    pki = Pki(tmp_path / "pki")
    with Blackhole() as hole, \
            TlsServer(*pki.leaf("self", self_signed=True)) as self_signed, \
            TlsServer(*pki.leaf("expired", expired=True)) as expired, \
            TlsServer(*pki.leaf("wrong", host="model.other.example")) as wrong, \
            TlsServer(*pki.leaf("good")) as good:
        body = CONFIG % {"hole": hole.port, "self": self_signed.url, "expired": expired.url,
                         "wrong": wrong.url, "good": good.url, "ca": pki.ca_file}
        with Daemon(tmp_path, body) as agent:
            names = ("blackhole", "nxdomain", "selfsigned", "expired", "wronghost", "goodtls")

            def all_ran() -> bool:
                return all(agent.check(n)["runs"] >= 2 for n in names)

            wait_for(all_ran, 30, what="every target checked twice")
            fast_before = agent.check("fast")["runs"]
            time.sleep(2.0)
            checks = {c["name"]: c for c in agent.status()["checks"]}
            assert agent.alive()

            # the healthy ones are unaffected: the TLS target signed by the configured CA, and
            # the fast check, which keeps its rhythm beside a target that never answers
            assert checks["goodtls"]["status"] == "OK", checks["goodtls"]
            assert checks["fast"]["runs"] - fast_before >= 2
            assert hole.accepted >= 2  # the agent did connect: it is the answer that never came

            said = {n: f"{checks[n]['message']} {checks[n]['error']}".lower() for n in names}
            assert checks["blackhole"]["status"] in ("UNKNOWN", "CRITICAL"), checks["blackhole"]
            assert "timed out" in said["blackhole"] or "timeout" in said["blackhole"], said["blackhole"]
            assert checks["nxdomain"]["status"] in ("UNKNOWN", "CRITICAL")
            assert "ranker.mlwarden.invalid" in said["nxdomain"] and "resolve" in said["nxdomain"], said
            for name, words in (("selfsigned", "self-signed"), ("expired", "expired"),
                                ("wronghost", "127.0.0.1")):
                assert checks[name]["status"] == "CRITICAL", checks[name]
                assert "certificate" in said[name] and words in said[name], (name, said[name])

            metrics = agent.metrics()
            assert re.search(r'mlwarden_check_status\{[^}]*check="goodtls"[^}]*\} 0', metrics)
            assert re.search(r'mlwarden_check_status\{[^}]*check="selfsigned"[^}]*\} 2', metrics)
            # the log says it too, once per check at least, naming the check
            logged = " ".join(f"{r.get('check', '')} {r['msg']}" for r in agent.log_lines()).lower()
            for name in names[:-1]:
                assert name in logged, f"{name} not named in the log"
            # said once, when it went down, not on every run
            msgs = [r["msg"] for r in agent.log_lines()]
            assert sum(m.startswith("check nxdomain is now UNKNOWN") for m in msgs) == 1, msgs
