"""Lumina: the ROS 2 node graph of a sleeping city.

Layout: ``lumina_nodes.msg/srv/action`` are the generated interfaces; ``kernels`` and ``models`` are plain
numpy/scipy (no rclpy); ``backends`` talk to devices; ``nodes`` are thin rclpy shells; ``tools`` hold the
launch runner, bag tools and monitors.
"""
