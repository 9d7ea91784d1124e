"""Device backends (no rclpy), one package per device kind: ``jewel/`` (sim, serial). Each package has the
same shape: ``base.py`` (the small interface of the kind), one module per backend, the factory in
``__init__.py``, and a wire protocol beside the backend that speaks it."""
