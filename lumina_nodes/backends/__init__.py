"""Device backends (no rclpy). Jewels: ``jewel`` (interface, `sim`, factory ``make_jewel_backend``),
``jewel_protocol`` (wire codec, docs/jewel_protocol.md), ``jewel_serial`` (`serial`, pyserial)."""
