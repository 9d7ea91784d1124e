"""Thin rclpy shells: each wires parameters, topics and timers to a plain-Python kernel or backend."""
