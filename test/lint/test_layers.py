"""The package's layering, checked on the import statements: rclpy and the generated interfaces are imported
by the ROS shells only (nodes/, and the cli/ to come); kernels, models, backends, the file-format code (bag/) and
the night's pictures (plots/) stay plain Python/numpy, so tests and benches call them without a ROS graph."""

import ast

import pytest

from harness import REPO

PACKAGE = REPO / "lumina_nodes"
#: Top-level modules that make code ROS-bound.
ROS_MODULES = {"rclpy", "rcl_interfaces", "diagnostic_msgs", "builtin_interfaces", "rosgraph_msgs", "std_msgs"}
ROS_SHELLS = ("nodes", "cli")
GENERATED = ("lumina_nodes.msg", "lumina_nodes.srv", "lumina_nodes.action")


def imported_modules(path, root=REPO):
    """Absolute names of every module ``path`` imports (relative imports resolved against its package)."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            names.append(module)
            names += [f"{module}.{alias.name}" for alias in node.names]
    return names


def ros_free_files():
    return sorted(p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] not in ROS_SHELLS)


@pytest.mark.parametrize("path", ros_free_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def ros_imports(path, root=REPO):
    return [
        name for name in imported_modules(path, root) if name.split(".")[0] in ROS_MODULES or name.startswith(GENERATED)
    ]


@pytest.mark.parametrize("path", ros_free_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_ros_free_layers_import_no_ros(path):
    bound = ros_imports(path)
    assert not bound, f"{path.relative_to(REPO)} imports {bound}: only nodes/ and cli/ may use ROS"


def test_the_check_sees_relative_and_absolute_ros_imports(tmp_path):
    fake = tmp_path / "lumina_nodes" / "kernels" / "fake.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from ..msg import SyncState\nimport rclpy.node\nfrom numpy import pi\n")
    assert ros_imports(fake, tmp_path) == ["lumina_nodes.msg", "lumina_nodes.msg.SyncState", "rclpy.node"]


def test_the_pictures_layer_is_checked():
    checked = {p.relative_to(PACKAGE).as_posix() for p in ros_free_files()}
    assert {"plots/extract.py", "plots/night.py", "bag/reader.py"} <= checked
