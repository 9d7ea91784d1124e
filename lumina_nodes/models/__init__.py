"""Plain numpy models (no rclpy): the simulators that backends, tests and benches share.

``sleeper`` (a sleeper wearing a Sleep Jewel: sleep stages, natural rhythm, battery) and ``loop_sim`` (the plant
of the synchronizer's closed loop: jewels that report late, lossy and noisy).
"""
