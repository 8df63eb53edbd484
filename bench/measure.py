"""Wall time, CPU time and peak memory of one command, for bench/run and
bench/vs-nca.

The peak RSS is read by GNU time (/usr/bin/time, Debian package `time`),
which forks the command from its own small process: the kernel's peak RSS of
a process forked from this Python interpreter and then exec'd starts at the
interpreter's RSS (hundreds of MiB in bench/vs-nca once it holds a matrix),
which would be measured instead of the command's. Wall and CPU time come
from wait4 (a waited-for child's CPU time counts for its parent). Without
GNU time the peak RSS is wait4's, an upper bound, and is marked so.
"""

import os
import shutil
import signal
import sys
import subprocess
import tempfile
import time

GNU_TIME = shutil.which("time", path="/usr/bin")
if not GNU_TIME:
    print("bench: /usr/bin/time (GNU time) is missing: peak RSS figures are upper bounds"
          " (apt-get install time)", file=sys.stderr)


def run(argv, limit=None, stdout=subprocess.DEVNULL):
    """{wall, cpu, rss (MiB), rss_exact, code, timed_out} of one command;
    killed after `limit` seconds."""
    report = tempfile.NamedTemporaryFile(prefix="ambit-bench-", suffix=".rss")
    if GNU_TIME:
        argv = [GNU_TIME, "-q", "-f", "%M", "-o", report.name, *argv]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = None if limit is None else start + limit
    timed_out = False
    while True:
        # Without a limit, block: polling would round short runs' wall time
        # up to the polling interval.
        pid, status, usage = os.wait4(proc.pid, 0 if deadline is None else os.WNOHANG)
        if pid:
            break
        if deadline is not None and time.perf_counter() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            timed_out = True
            _, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.005)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    rss, exact = usage.ru_maxrss / 1024, False
    with open(report.name) as f:
        lines = f.read().split()
    if GNU_TIME and not timed_out and lines and lines[-1].isdigit():
        rss, exact = int(lines[-1]) / 1024, True
    report.close()
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss": rss,
        "rss_exact": exact,
        "code": proc.returncode,
        "timed_out": timed_out,
    }
