"""Pictures of a recorded night (no rclpy): ``extract`` reads a bag's festival, synchronizer, Bio-Dream and
SleepTree topics into plain numpy arrays (:class:`~lumina_nodes.plots.extract.Night`), ``night`` draws the figures
from those arrays with matplotlib (Agg). ``lumina plot`` (``cli/plot.py``) ties the two together.
"""
