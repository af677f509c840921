"""Exit codes of the ``mlwarden`` command, one table for every subcommand.

``mlwarden check`` exits with the check's status (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN,
the Nagios convention a cron job or a probe script reads), so nothing else may use 2 or 3,
and 1 only means "the command ran and found or hit a problem". Usage and config errors
take the BSD ``sysexits.h`` codes, far outside the status range: a typo in a cron job's
command line can never read as "the model endpoint is CRITICAL". The README's table is
generated from :data:`TABLE` by ``python -m agent.docs --write``, and
``tests/agent/test_exit_codes.py`` runs one case per row.
"""

from __future__ import annotations

__all__ = ["OK", "FAILED", "WARNING", "CRITICAL", "UNKNOWN", "USAGE", "DATA", "CONFIG",
           "INTERRUPTED", "TABLE"]

OK = 0
WARNING = 1  # `check`: the status WARNING
FAILED = 1  # any other command: it ran and hit a problem (no agent answered, a mismatch)
CRITICAL = 2
UNKNOWN = 3
USAGE = 64  # EX_USAGE: bad command line
DATA = 65  # EX_DATAERR: an input data file is malformed
CONFIG = 78  # EX_CONFIG: the config (or a rule file, or a setting the command needs) is bad
INTERRUPTED = 130  # 128 + SIGINT

TABLE: tuple[tuple[str, str], ...] = (
    ("0", "success; `check`: the check is OK"),
    ("1", "`check`: WARNING. Any other command: it ran and found or hit a problem "
          "(`rules test`: the alerts differ from the expected ones; `status`: no agent answered; "
          "`run`: could not start, e.g. the port is taken)"),
    ("2", "`check`: CRITICAL (the target is down or answered badly); no other command uses 2"),
    ("3", "`check`: UNKNOWN (the agent could not find out); no other command uses 3"),
    ("64", "usage error: unknown command or option, a bad argument value, no check instance "
           "of that name, a file in the way (`init` without `--force`)"),
    ("65", "data error: `rules test` data (CSV) is malformed"),
    ("78", "config error: the config or a rule file is unreadable or invalid (`config validate` "
           "included), or a setting the command needs is missing"),
    ("130", "interrupted (Ctrl-C); `run` stopped at once by a second signal exits 128 + its number"),
)
