"""What resolving a launch file produces: processes to run, declared arguments, errors (plain data)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


class LaunchError(Exception):
    """Any error in a launch description; the message names file, line and element."""


@dataclass
class ParamFile:
    """A --params-file passed to a node: generated (content set) or user file (content None)."""

    path: str
    content: str | None = None

    @property
    def generated(self) -> bool:
        return self.content is not None


@dataclass
class ProcessSpec:
    """One fully resolved process, as ros2 launch would start it."""

    name: str  # process label, e.g. 'talker-1' (used in the output prefix)
    cmd: list[str]  # exact argv
    env: dict[str, str]  # full child environment
    cwd: str | None = None
    output: str = "log"  # log | screen | both | own_log | full
    respawn: bool = False
    respawn_delay: float = 0.0
    respawn_max_retries: int = -1  # <0: infinite
    required: bool = False  # on_exit="shutdown"
    sigterm_timeout: float = 5.0
    sigkill_timeout: float = 5.0
    shell: bool = False
    emulate_tty: bool = False  # stdout/stderr are ptys (isatty() true), like upstream
    param_files: list[ParamFile] = field(default_factory=list)
    node_name: str | None = None  # full node name if name and namespace known
    is_node: bool = False
    source: str = ""  # 'file:line' of the <node>/<executable> element

    @property
    def generated_param_files(self) -> list[ParamFile]:
        return [p for p in self.param_files if p.generated]


@dataclass
class LaunchArgument:
    name: str
    default: str | None  # description of the default, like ros2 launch -s (or None)
    description: str
    choices: list[str] | None
    conditional: bool


@dataclass
class LaunchResult:
    processes: list[ProcessSpec]
    warnings: list[str]
    configurations: dict[str, object]


def remove_generated_param_files(processes):
    """Delete the parameter files generated for ``processes`` (ProcessSpecs); missing ones are fine."""
    for p in processes:
        for pf in p.generated_param_files:
            try:
                os.unlink(pf.path)
            except OSError:
                pass


def format_show_args(args: list[LaunchArgument]) -> str:
    """Same text as `ros2 launch -s` (print_arguments_of_launch_description)."""
    lines = ["Arguments (pass arguments as '<name>:=<value>'):"]
    any_cond = False
    for a in args:
        msg = "\n    '" + a.name + "':"
        if a.conditional:
            any_cond = True
            msg += "*"
        msg += "\n        " + "\n        ".join(a.description.splitlines())
        if a.default is not None:
            msg += f"\n        (default: {a.default})"
        lines.append(msg)
    if args:
        if any_cond:
            lines.append("* argument(s) which are only used if specific conditions occur")
    else:
        lines.append("No arguments.")
    return "\n".join(lines) + "\n"
