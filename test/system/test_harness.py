"""The harness itself: a process that escapes its graph is caught, in benches (isolated_graph) as in tests."""

import time

import pytest

from harness import isolated_graph


def test_isolated_graph_fails_when_a_process_outlives_it():
    with pytest.raises(AssertionError, match="processes outlived the graph") as caught:
        with isolated_graph("harness_probe") as (manager, _):
            # a grandchild in its own session escapes the process-group kill, as an orphaned node would
            manager.start(["sh", "-c", "setsid sleep 60 & sleep 0.2"], name="escaper")
            time.sleep(0.5)
    assert "sleep" in str(caught.value)
