"""Device backends (no rclpy), one package per device kind: ``jewel/`` (sim, serial), ``biodream/`` (sim,
brainflow, edf), ``sleeptree/`` (sim, sacn). Each package has the same shape: ``base.py`` (the small interface of
the kind), one module per backend, the factory in ``__init__.py`` (a table name -> (module, class) served by
:func:`make_backend`), and a wire protocol beside the backend that speaks it."""

from __future__ import annotations

import importlib
import inspect


def backend_class(table: dict, kind: str, name: str) -> type:
    """The class of the backend ``name`` in ``table`` ({name: (module, class)}), imported on demand so a
    backend's libraries load only when it is chosen; ValueError naming the choices for an unknown name."""
    key = str(name).strip().lower()
    if key not in table:
        raise ValueError(f"unknown {kind} backend {name!r}; choose one of {', '.join(table)}")
    module, cls = table[key]
    return getattr(importlib.import_module(module), cls)


def make_backend(table: dict, kind: str, name: str, *args, **params):
    """The backend ``name`` of ``table`` built with ``args`` and ``params``; ValueError for an unknown name or a
    parameter the backend does not take (naming the ones it does), and whatever its constructor checks."""
    cls = backend_class(table, kind, name)
    known = list(inspect.signature(cls).parameters)[len(args) :]
    unknown = sorted(set(params) - set(known))
    if unknown:
        label = getattr(cls, "name", "") or name
        raise ValueError(
            f"{', '.join(unknown)}: not a parameter of the {label} {kind} backend (its parameters: "
            f"{', '.join(known) or 'none'})"
        )
    return cls(*args, **params)
