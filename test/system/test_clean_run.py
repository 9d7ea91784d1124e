"""A normal run of the medium city has no false rejects: every sample the drivers send is in order (issue 15
item 11: thousands of `out_of_order` rejects kept the synchronizer's /diagnostics at WARN)."""

from diagnostic_msgs.msg import DiagnosticArray

from harness import package_executable


def test_the_medium_city_on_the_wall_clock_rejects_no_sample_as_out_of_order(processes, ros_node):
    processes.start(
        [
            package_executable("lumina_launch"),
            *("lumina_nodes", "city.launch.xml", "size:=medium", "scenario:=watch", "lighting:=sim", "biodream:=none"),
        ],
        name="city",
    )
    loop = {}

    def on_diagnostics(msg):
        for status in msg.status:
            if status.name == "synchronizer: loop":
                loop.update({kv.key: kv.value for kv in status.values})

    ros_node.node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 50)
    # simulated links drop out now and then: 98 % of the 1,000 jewels reporting is the whole city
    ros_node.spin_until(lambda: int(loop.get("jewels_active", "0")) >= 980, 60, "the city's jewels reporting")
    start = dict(loop)
    ros_node.spin_for(10.0)
    # the counters are totals since the synchronizer started: none may grow in 10 s of a normal night
    grown = {k: (start.get(k), v) for k, v in loop.items() if k.startswith("rejected_") and v != start.get(k, v)}
    assert int(loop.get("rejected_out_of_order", "0")) == 0, loop
    assert not grown, grown
