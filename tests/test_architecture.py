"""The import contracts of setup.cfg ``[importlinter]`` hold (docs/architecture.md).

They are the one-way data flow written down: checks never reach past the pipeline,
components take their own config section, exporters and the store stay beside the alert
chain, the chain runs rules -> alerting -> notify, and the store's tables are imported
only by the modules that own them. `lint-imports` builds the import graph from the
source (about a second) and names the import chain that breaks a contract.
"""

import configparser
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _contracts() -> list[str]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    return [s for s in cfg.sections() if s.startswith("importlinter:contract:")]


def test_import_contracts_are_kept():
    exe = Path(sys.executable).parent / "lint-imports"
    assert exe.exists(), f"{exe} is missing: install the test extra (pip install -e '.[test]')"
    proc = subprocess.run([str(exe), "--no-cache"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"lint-imports failed (exit {proc.returncode}):\n{out}"
    # every contract in setup.cfg was read and checked: none silently dropped
    summary = re.search(r"Contracts: (\d+) kept, (\d+) broken", out)
    assert summary is not None, out
    assert (int(summary[1]), int(summary[2])) == (len(_contracts()), 0), out
