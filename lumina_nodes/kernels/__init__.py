"""Plain numpy/scipy kernels (no rclpy): the phase-locking synchronizer kernel lives in ``phase_lock``."""
