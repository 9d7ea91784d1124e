"""Settings of the ROS-free configuration dataclasses (kernels, models, program sequencing): one :class:`Setting`
per field, stored as the field's metadata, says what it means, its unit and its valid values.

Written once, read three ways: the dataclass's ``validate()`` checks values against it (:func:`problems`), its
docstring lists it (:func:`attributes_doc`), and its node declares the ROS parameters from it
(``nodes.common.params_from_settings``), so a range can never differ between the check and the parameter
descriptor. ``kernels/phase_lock/config.py`` (``SyncConfig``) is the example to copy.
"""

import dataclasses
import math
import textwrap

import numpy as np


@dataclasses.dataclass(frozen=True)
class Setting:
    """Meaning and valid values of one dataclass field (stored as its field metadata ``"setting"``).

    Attributes
    ----------
    description : str
        What the field does.
    unit : str
        SI unit of the value; empty for counts, fractions, flags and names.
    low, high : int or float or None
        Valid range, both ends inclusive unless ``low_open``; None for a flag or a name.
    low_open : bool
        ``low`` itself is invalid (the value must be > low). ROS parameter ranges are closed, so a node declares
        [low, high] and the dataclass's ``validate()`` (run in its set-parameters callback) refuses ``low``.
    integer : bool
        Whole numbers only.
    read_only : bool
        Fixed once the node runs (a read-only parameter).
    choices : tuple of str
        The valid values of a name.
    """

    description: str
    unit: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    integer: bool = False
    read_only: bool = False
    choices: tuple = ()

    def range_text(self) -> str:
        """The valid values as text: ``(0, 10] Hz``, ``[1, 1000]``, ``one of 'controller', 'kuramoto'``."""
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.low is None:
            return "True or False"
        text = f"{'(' if self.low_open else '['}{_number(self.low)}, {_number(self.high)}]"
        return f"{text} {self.unit}" if self.unit else text

    def summary(self) -> str:
        """The description with the valid values, as the docstring and the ROS parameter descriptions show it."""
        return f"{self.description} Valid: {self.range_text()}."

    def problem(self, name: str, value) -> str | None:
        """Why ``value`` is not valid for the field ``name``, or None when it is."""
        if self.choices:
            return (
                None
                if isinstance(value, str) and value in self.choices
                else f"{name} must be {self.range_text()}, got {value!r}"
            )
        if self.low is None:
            return None if isinstance(value, (bool, np.bool_)) else f"{name} must be a bool, got {value!r}"
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            return f"{name} must be a number, got {value!r}"
        if not math.isfinite(float(value)):
            return f"{name} must be finite, got {value!r}"
        if self.integer and int(value) != value:
            return f"{name} must be an integer, got {value!r}"
        if (value <= self.low if self.low_open else value < self.low) or value > self.high:
            return f"{name} must be in {self.range_text()}, got {value!r}"
        return None


def _number(x) -> str:
    return str(x) if isinstance(x, int) else f"{x:.10g}"


def setting(default, description, unit="", low=None, high=None, **flags):
    """A dataclass field with its :class:`Setting` as metadata."""
    return dataclasses.field(default=default, metadata={"setting": Setting(description, unit, low, high, **flags)})


class SettingsConfig:
    """Base of a settings dataclass: :meth:`settings` lists its fields' settings, :meth:`validate` checks the
    values against them first and then the relations between fields (:meth:`cross_field_problems`)."""

    @classmethod
    def settings(cls) -> list:
        """Every field with its :class:`Setting`, in declaration order: list of (dataclasses.Field, Setting)."""
        return settings_of(cls)

    def validate(self) -> list[str]:
        """Human-readable errors; an empty list when the configuration is usable."""
        return problems(self) or self.cross_field_problems()

    def cross_field_problems(self) -> list[str]:
        """Errors in how the (individually valid) fields go together; none by default."""
        return []


def settings_of(cls) -> list:
    """Every field of the dataclass ``cls`` with its :class:`Setting`, in declaration order:
    list of (dataclasses.Field, Setting)."""
    return [(f, f.metadata["setting"]) for f in dataclasses.fields(cls)]


def problems(instance) -> list[str]:
    """Why the field values of ``instance`` are not valid, one message per bad field (empty when all are)."""
    return [
        p for f, s in settings_of(type(instance)) if (p := s.problem(f.name, getattr(instance, f.name))) is not None
    ]


def attributes_doc(cls, read_only_note: str = " Read-only in the node.") -> str:
    """The numpydoc Attributes section of the dataclass ``cls``, from its settings (append it to ``__doc__``)."""
    lines = ["", "", "    Attributes", "    ----------"]
    for field, item in settings_of(cls):
        kind = field.type if isinstance(field.type, str) else field.type.__name__
        lines.append(f"    {field.name} : {kind}")
        text = item.summary() + (read_only_note if item.read_only else "")
        lines += [f"        {line}" for line in textwrap.wrap(text, 108)]
    return "\n".join(lines) + "\n"
