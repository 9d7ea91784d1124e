"""`lumina view` on a festival night: plain lines in a pipe, a table redrawn in place on a terminal, 80 columns."""

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time

from harness import package_executable

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def read_pty(master, proc, timeout):
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal side closed: the view has exited
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    return b"".join(chunks).decode(errors="replace")


def test_view_follows_a_festival_night_in_a_pipe_and_on_a_terminal(processes):
    view = [package_executable("lumina"), "view", "--until-done", "--period", "0.5", "--timeout", "150"]
    plain = subprocess.Popen(view, env=processes.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 80, 0, 0))
    terminal = subprocess.Popen(view, env={**processes.env, "TERM": "xterm"}, stdout=slave, stderr=slave)
    os.close(slave)
    # both views are up (their first frame drawn) before the city starts, so they see the whole night
    first_line = plain.stdout.readline()
    assert "waiting for /sync/state" in first_line, first_line
    ready, _, _ = select.select([master], [], [], 30)
    assert ready, "the terminal view drew nothing"
    early = os.read(master, 65536)
    processes.start(
        [
            package_executable("lumina_launch"),
            *("lumina_nodes", "city.launch.xml", "size:=small", "lighting:=none", "biodream:=none"),
            *("use_sim_time:=true", "sim_speed:=4.0", "time_scale:=0.5"),
        ],
        name="city",
    )
    try:
        screen = early.decode(errors="replace") + read_pty(master, terminal, 160)
        out, err = plain.communicate(timeout=30)
        out = first_line + out
        terminal.wait(timeout=30)
    finally:
        os.close(master)
        for proc in (plain, terminal):
            if proc.poll() is None:
                proc.kill()
    assert plain.returncode == 0 and terminal.returncode == 0, (err, screen[-2000:])

    # a pipe: plain lines, none wider than 80 columns, the night's phases in order and its end
    lines = out.splitlines()
    assert lines and max(len(line) for line in lines) <= 80, max(lines, key=len)
    assert not ANSI.search(out)
    phases = [m.group(1) for m in re.finditer(r"^(\w+) \d/8 +r \d\.\d{3}", out, re.M)]
    order = ["synchronised_slumber", "disruption", "chaos", "feedback_loop", "reflective_sessions", "aftermath"]
    seen = [p for p in dict.fromkeys(phases) if p in order]
    assert seen == [p for p in order if p in seen] and len(seen) >= 3, out
    assert "  program_finished: harmony reached" in lines
    # --until-done: the view ends about a second after the program finished (frames every 0.5 s)
    assert lines[-1].startswith("finished (sleep_art_festival) r ")
    assert 1 <= sum(line.startswith("finished (") for line in lines) <= 4, lines[-5:]

    # a terminal: redrawn in place (cursor moves up and erases lines), the per-plaza table, 80 columns
    assert "\x1b[2K" in screen and re.search(r"\x1b\[\d*A", screen), screen[:500]
    visible = [ANSI.sub("", line).rstrip() for line in re.split(r"\r?\n|\r", screen)]
    assert max(len(line) for line in visible) <= 80, max(visible, key=len)
    assert any(re.match(r"plaza +jewels +r +locked +age ms", line) for line in visible), visible[:20]
    for k in range(1, 5):
        assert any(re.match(rf"plaza_{k} +\d+/25 +\d\.\d{{3}}", line) for line in visible), k
    assert any(line.startswith("finished (sleep_art_festival)") for line in visible)
