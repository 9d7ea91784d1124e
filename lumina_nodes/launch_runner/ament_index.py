"""Package lookup in the ament index (as ament_index_python and ros2launch do it), without importing ROS.

Every lookup raises LookupError with upstream's message when the package or file is not there.
"""

from __future__ import annotations

import os
import shutil


def _ament_prefixes(environ=None) -> list[str]:
    environ = os.environ if environ is None else environ
    value = environ.get("AMENT_PREFIX_PATH", "")
    if not value:
        raise LookupError("Environment variable 'AMENT_PREFIX_PATH' is not set or empty")
    return [p for p in value.split(os.pathsep) if p]


def get_package_prefix(pkg: str, environ=None) -> str:
    prefixes = _ament_prefixes(environ)
    for prefix in prefixes:
        marker = os.path.join(prefix, "share", "ament_index", "resource_index", "packages", pkg)
        if os.path.isfile(marker):
            return prefix
    raise LookupError(f"package '{pkg}' not found, searching: {prefixes}")


def get_package_share_directory(pkg: str, environ=None) -> str:
    return os.path.join(get_package_prefix(pkg, environ), "share", pkg)


def find_executable_in_package(exe: str, pkg: str, environ=None) -> str:
    """Path of ``exe`` in ``<prefix>/lib/<pkg>``, like launch_ros' ExecutableInPackage."""
    prefix = get_package_prefix(pkg, environ)
    libexec = os.path.join(prefix, "lib", pkg)
    if not os.path.isdir(libexec):
        raise LookupError(f"package '{pkg}' found at '{prefix}', but libexec directory '{libexec}' does not exist")
    found = shutil.which(exe, path=libexec)
    if found is None:
        raise LookupError(f"executable '{exe}' not found on the libexec directory '{libexec}'")
    return found


def find_launch_file_in_package(pkg: str, file_name: str, environ=None) -> str:
    """Like ros2launch get_share_file_path_from_package (recursive, error on duplicates)."""
    share = get_package_share_directory(pkg, environ)
    matches = []
    for root, dirs, files in os.walk(share):
        dirs.sort()
        if file_name in files:
            matches.append(os.path.join(root, file_name))
    if not matches:
        raise LookupError(
            f"file '{file_name}' was not found in the share directory of package '{pkg}' which is at '{share}'"
        )
    if len(matches) > 1:
        raise LookupError(
            f"file '{file_name}' was found more than once in the share directory of package '{pkg}': {matches}"
        )
    return matches[0]
