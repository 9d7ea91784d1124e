"""Line numbers of the keys and items of a YAML document, so that a map's errors can name where they are."""

from __future__ import annotations

import yaml


def load_with_lines(text: str):
    """(document, lines) of YAML ``text``: ``lines`` maps the path of each mapping value and sequence item, a tuple
    of keys and indices such as ``("phases", 2, "until")``, to its 1-based line; ``()`` is the document.

    yaml.YAMLError (with ``problem_mark``) for text that is not YAML.
    """
    document = yaml.safe_load(text)
    lines = {(): 1}
    _walk(yaml.compose(text, Loader=yaml.SafeLoader), (), lines)
    return document, lines


def line_of(lines: dict, path: tuple) -> int:
    """The line of ``path``, or of its nearest ancestor that has one."""
    while path not in lines:
        path = path[:-1]
    return lines[path]


def _walk(node, path, lines):
    if node is None:
        return
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            _walk(value, (*path, key.value), lines)
            lines[(*path, key.value)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines)
