"""The Sleep Art Festival as a program (no rclpy): ``program`` (the YAML schema of config/programs/*.yaml, checked
on load) and ``sequencer`` (the phase machine the festival orchestrator node runs)."""
