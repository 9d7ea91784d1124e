"""Value coercion as launch does it: typed values with yaml rules (launch/utilities/type_utils.py) and
condition expressions (launch/conditions/evaluate_condition_expression.py).

A type is None (yaml rules) or (scalar type, is_list). Every failure is a ValueError.
"""

from __future__ import annotations

import yaml

# <param type="..."> -> (scalar type, is_list)
PARAM_TYPES = {
    "str": (str, False),
    "int": (int, False),
    "float": (float, False),
    "bool": (bool, False),
    "list_of_str": (str, True),
    "list_of_int": (int, True),
    "list_of_float": (float, True),
    "list_of_bool": (bool, True),
}
_SCALARS = (int, float, bool, str)


def is_valid_value(v, can_be_str=False) -> bool:
    """A scalar, or a list of scalars of one type (strings mixed in when ``can_be_str``)."""
    if isinstance(v, list):
        if not v:
            return True
        t = type(v[0])
        if not isinstance(v[0], _SCALARS):
            return False
        return all(type(x) is t or (can_be_str and isinstance(x, str)) for x in v)
    return isinstance(v, _SCALARS)


def _yaml_problem(error: Exception) -> str:
    """A yaml error on one line (the error's own text spans several, with a caret under the place)."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem:
        mark = error.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1} of the value" if mark is not None else ""
        return error.problem + where + (f" ({error.context})" if error.context else "")
    return " ".join(str(error).split())


def coerce_to_type(value: str, dtype, can_be_str=False):
    """launch's coerce_to_type(value, data_type) with dtype = None | (scalar type, is_list)."""

    def as_yaml(v, err):
        if not v:
            return v
        try:
            out = yaml.safe_load(v)
        except Exception as e:
            if can_be_str:
                return v
            raise ValueError(f"{err}: yaml.safe_load() failed: {_yaml_problem(e)}") from e
        if not is_valid_value(out, can_be_str):
            raise ValueError(f"{err}: output type is not allowed, got {type(out).__name__}")
        return out

    if dtype is None:
        return as_yaml(value, f"Failed to convert '{value}' using yaml rules")
    t, is_list = dtype
    valid = (str, t) if can_be_str else t
    if is_list:
        out = as_yaml(value, f"Cannot convert value '{value}' to a list of '{t.__name__}'")
        if not isinstance(out, list) or not all(isinstance(x, valid) for x in out):
            raise ValueError(f"Cannot convert value '{value}' to a list of '{t.__name__}'")
        return out
    if t is str:
        return value
    if t in (int, float):
        try:
            return t(value)
        except ValueError:
            if can_be_str:
                return value
            raise ValueError(f"Cannot convert value '{value}' to '{t.__name__}'") from None
    out = as_yaml(value, f"Failed to convert '{value}' to 'bool'")
    if isinstance(out, valid):
        return out
    raise ValueError(f"Cannot convert value '{value}' to 'bool'")


def to_bool(value: str) -> bool:
    """A bool by yaml rules, as launch reads bool attributes and the operands of $(not), $(and), ..."""
    return coerce_to_type(value, (bool, False))


def evaluate_condition_expression(value: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise ValueError(
        f"invalid condition expression '{value}': expected one of ['true', '1', 'false', '0'] (case-insensitive)"
    )
