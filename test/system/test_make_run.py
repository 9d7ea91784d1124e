"""make run's script on a terminal: the live view in 80 columns, then the summary, then the night's pictures."""

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time

from harness import REPO

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_make_run_on_a_terminal_shows_the_view_the_summary_and_the_pictures(processes, tmp_path):
    night = tmp_path / "night"
    master, slave = pty.openpty()
    os.set_blocking(master, False)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 80, 0, 0))
    env = {k: v for k, v in processes.env.items() if k != "CI"}
    run = subprocess.Popen(
        [str(REPO / "scripts" / "run_city.sh"), "size:=small", "lighting:=sim", f"record:={night}"],
        env={**env, "TERM": "xterm"},
        cwd=tmp_path,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    chunks, deadline = [], time.monotonic() + 150
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    break
                if not data:
                    break
                chunks.append(data)
            elif run.poll() is not None:
                break
        run.wait(timeout=30)
    finally:
        os.close(master)
        if run.poll() is None:
            os.killpg(run.pid, 9)
    screen = b"".join(chunks).decode(errors="replace")
    text = ANSI.sub("", screen)
    assert run.returncode == 0, text[-3000:]
    live, _, after = text.partition("=== Lumina festival")
    # the live part: redrawn in place, 80 columns, the per-plaza table
    assert "\x1b[2K" in screen
    lines = [line.rstrip() for line in re.split(r"\r?\n|\r", live) if line.strip()]
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    assert any(re.match(r"plaza_4 +25/25 +\d\.\d{3}", line) for line in lines)
    # then the summary, where the launch's whole output is, and the pictures of the recorded night
    assert "result: harmony reached" in after and "phases completed" in after
    log = re.search(r"The launch's whole output: (\S+)", after).group(1)
    assert "festival_orchestrator" in (tmp_path / log).read_text()
    for name in ("order", "clusters", "plazas", "trees"):
        assert f"wrote {night}/plots/{name}.png" in after
        assert (night / "plots" / f"{name}.png").stat().st_size > 10_000
