"""Lumina: the ROS 2 node graph of a sleeping city.

Layers (docs/architecture.md):

- ``msg``, ``srv``, ``action``: the generated interfaces (built by colcon from msg/, srv/, action/);
- ``constants`` (the interfaces' constants for ROS-free code) and ``phase`` (the one phase wrap);
- ``kernels``: the numeric cores (the phase-locking synchronizer kernel), plain numpy;
- ``models``: the simulators that backends, tests and benches share (sleepers, the synchronizer's plant);
- ``backends``: one package per device kind, e.g. ``backends.jewel`` (sim, serial), chosen by name;
- ``nodes``: the rclpy nodes, thin shells over kernels and backends (the only layer that imports rclpy);
- ``launch_runner``: ``lumina_launch``, runs ROS 2 launch XML where ``ros2 launch`` is not installed;
- ``tools``: device emulators (``jewel_emulator``); ``fastpath`` and ``timing``: message array and loop timing
  helpers.
"""
