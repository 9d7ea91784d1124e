"""Line numbers of the keys and items of a YAML document, so that a map's errors can say where they are
(the SleepTree fixture map, festival programs)."""

from __future__ import annotations

import yaml


def load_with_lines(text: str):
    """(document, lines) of YAML ``text``; ``lines`` is :func:`node_lines` of it.

    yaml.YAMLError (with ``problem_mark``) for text that is not YAML.
    """
    document = yaml.safe_load(text)
    return document, node_lines(yaml.compose(text, Loader=yaml.SafeLoader))


def node_lines(root) -> dict[tuple, int]:
    """The 1-based line of every key path in a composed YAML document: ``()`` the document, ``('trees',)`` the key
    'trees', ``('trees', 1)`` the second item, ``('trees', 1, 'universe')`` that item's value of 'universe' (the
    value's line, where a wrong value is)."""
    lines: dict[tuple, int] = {}

    def walk(node, path: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):  # (a list or mapping as a key names no key path)
                    lines[(*path, key.value)] = (value if path else key).start_mark.line + 1
                    walk(value, (*path, key.value))
        elif isinstance(node, yaml.SequenceNode):
            for k, item in enumerate(node.value):
                lines[(*path, k)] = item.start_mark.line + 1
                walk(item, (*path, k))

    if root is not None:
        lines[()] = root.start_mark.line + 1
        walk(root, ())
    return lines


def line_of(lines: dict, path: tuple) -> int:
    """The line of ``path``, or of its nearest ancestor that has one (1 for none)."""
    path = tuple(path)
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path, 1)
