#!/usr/bin/env python3
"""Fake node for the launch runner tests (stdlib only), driven by environment variables.

FAKE_OUT="a|b"      lines printed on stdout      FAKE_ERR="x|y"   lines printed on stderr
FAKE_SLEEP=seconds  sleep before exiting (inf = forever)
FAKE_EXIT=code      exit code (default 0)
FAKE_IGNORE=INT,TERM  signals to ignore
FAKE_GRANDCHILD=1   start a grandchild (same signal dispositions) that sleeps forever
FAKE_PIDFILE=path   append "<role> <pid> <time>" lines (role: node / grandchild)
FAKE_ARGV=1         print the argv as JSON
"""

import json
import os
import signal
import subprocess
import sys
import time


def record(role):
    path = os.environ.get("FAKE_PIDFILE")
    if path:
        with open(path, "a") as f:
            f.write(f"{role} {os.getpid()} {time.time():.3f}\n")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--grandchild":
        record("grandchild")
        while True:
            time.sleep(1)
    for name in filter(None, os.environ.get("FAKE_IGNORE", "").split(",")):
        signal.signal(getattr(signal, "SIG" + name), signal.SIG_IGN)
    record("node")
    if os.environ.get("FAKE_ARGV"):
        print("ARGV " + json.dumps(sys.argv[1:]))
    for line in filter(None, os.environ.get("FAKE_OUT", "").split("|")):
        print(line)
    for line in filter(None, os.environ.get("FAKE_ERR", "").split("|")):
        print(line, file=sys.stderr)
    sys.stdout.flush()
    if os.environ.get("FAKE_GRANDCHILD"):
        subprocess.Popen([sys.executable, os.path.abspath(__file__), "--grandchild"])
    sleep = os.environ.get("FAKE_SLEEP")
    if sleep:
        end = time.monotonic() + float(sleep)
        while time.monotonic() < end:
            time.sleep(0.05)
    sys.exit(int(os.environ.get("FAKE_EXIT", "0")))


if __name__ == "__main__":
    main()
