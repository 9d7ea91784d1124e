"""The lint gate: ruff's checks and its formatter (ruff.toml) over the whole tree, as part of `make test`."""

import shutil
import subprocess

import pytest

from harness import REPO


def ruff(*args):
    executable = shutil.which("ruff") or pytest.fail("ruff is not installed (make setup installs the pinned one)")
    return subprocess.run([executable, *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_ruff_check_is_clean():
    run = ruff("check", "--no-cache", "--output-format", "concise", ".")
    assert run.returncode == 0, f"ruff check found problems (fix: ruff check --fix .):\n{run.stdout}{run.stderr}"


def test_ruff_format_is_applied():
    run = ruff("format", "--no-cache", "--check", ".")
    assert run.returncode == 0, f"files not formatted (fix: ruff format .):\n{run.stdout}{run.stderr}"


def test_the_gate_sees_a_lint_error(tmp_path):
    """The gate itself can fail: an unused import in a file under the tree's config is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n")
    run = ruff("check", "--no-cache", "--config", str(REPO / "ruff.toml"), str(bad))
    assert run.returncode == 1 and "F401" in run.stdout, run.stdout + run.stderr
