"""Setuptools shim: the package metadata and executables live in setup.cfg.

colcon builds this package with ament_cmake (CMakeLists.txt), which generates the message code and installs
the Python package and the executables listed in setup.cfg. This file lets Python tooling that expects a
setup.py read the same metadata.
"""

from setuptools import setup

setup()
