"""Plain numpy models (no rclpy): the sleeper + Sleep Jewel oscillator model."""

from .sleeper import STAGE_NAMES, SleeperModel, SleeperParams, wrap_phase

__all__ = ["STAGE_NAMES", "SleeperModel", "SleeperParams", "wrap_phase"]
