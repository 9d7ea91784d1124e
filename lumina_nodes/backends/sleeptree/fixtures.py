"""The fixture map of the SleepTrees and its DMX layout (no rclpy).

A fixture map is YAML (``config/sleeptree_fixtures.yaml`` is the example, with every key explained)::

    trees:
      - id: tree_plaza_1_north   # unique; names the topic /trees/<id>/lighting
        plaza: plaza_1           # the plaza (driver id) whose state the tree shows
        pixels: 300              # RGB pixels, 3 DMX slots each, >= 1
        colour_order: GRB        # the order the fixture takes a pixel's 3 slots: RGB RBG GRB GBR BRG BGR
        universe: 1              # 1..63999
        start_channel: 1         # slot of the first pixel's first colour, 1..510
        destination: 10.0.0.20   # optional: the controller's address (default: the node's sacn destination)

A tree whose pixels do not fit in its universe continues at slot 1 of the next universe, then the next: whole
pixels only, a pixel's 3 slots never split across universes, as pixel controllers count. So each universe a tree
continues into holds up to 170 pixels (slots 1..510; 511 and 512 stay 0): a 300-pixel tree from slot 1 has pixels
1..170 in its universe and 171..300 from slot 1 of the next. A tree from slot 508 has one pixel there (508..510)
and its second at slot 1 of the next universe; from slot 510 one pixel fits (510..512).

Errors name the file, line and key path, and every problem found is reported at once (one per line), e.g.
``trees.yaml:9: trees[1].universe: 64000 is out of range 1..63999``.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Callable, Sequence

import numpy as np
import yaml

from ...yaml_lines import line_of, load_with_lines
from .base import MAX_UNIVERSE, SLOTS, Universe, ipv4, unicast_problem

COLOUR_ORDERS = tuple("".join(p) for p in itertools.permutations("RGB"))
KEYS = ("id", "plaza", "pixels", "colour_order", "universe", "start_channel", "destination")
REQUIRED = ("id", "plaza", "pixels", "colour_order", "universe", "start_channel")
PIXELS_PER_UNIVERSE = SLOTS // 3  # 170 whole pixels
MAX_START_CHANNEL = SLOTS - 2  # 510: the last slot a pixel's 3 colours can start at
MAX_PIXELS = PIXELS_PER_UNIVERSE * MAX_UNIVERSE
# a ROS 2 name token, as the topic /trees/<id>/lighting needs: a letter, then letters, digits or single underscores
TREE_ID = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")

#: where(tree index, key or None) -> the text that starts a problem, e.g. "trees.yaml:7: trees[1].universe"
Where = Callable[[int, "str | None"], str]


class FixtureError(ValueError):
    """A fixture map that cannot work; the message lists every problem, one per line."""


@dataclasses.dataclass(frozen=True)
class Tree:
    """One tree and where its pixels sit in DMX (see the module docstring for the spanning rule)."""

    id: str
    plaza: str
    pixels: int
    colour_order: str
    universe: int
    start_channel: int
    destination: str = "127.0.0.1"


def tree_segments(tree: Tree) -> list[tuple[int, int, int, int]]:
    """Where the tree's pixels go: (universe, first slot, first pixel, pixel count) per universe it spans."""
    segments, pixel, universe, slot = [], 0, tree.universe, tree.start_channel
    while pixel < tree.pixels:
        count = min(tree.pixels - pixel, (SLOTS - slot + 1) // 3)
        segments.append((universe, slot, pixel, count))
        pixel, universe, slot = pixel + count, universe + 1, 1
    return segments


class DmxLayout:
    """Where every pixel's colours sit in the universes: one gather index, so packing a frame is one fancy index.

    Parameters
    ----------
    trees : sequence of Tree
        Valid trees whose slots do not overlap (as :func:`fixture_map` checks), in map order: the frame's pixels
        are the trees' pixels concatenated in this order.

    Attributes
    ----------
    universes : tuple of int
        The universe numbers in use, ascending: the rows of :meth:`pack`'s result.
    pixel_offsets : numpy.ndarray
        int64 (len(trees) + 1,): tree k's pixels are rows ``pixel_offsets[k]:pixel_offsets[k + 1]`` of the frame.
    """

    def __init__(self, trees: Sequence[Tree]):
        self.trees = tuple(trees)
        counts = np.array([t.pixels for t in self.trees], np.int64)
        self.pixel_offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        self._segments = [tree_segments(t) for t in self.trees]
        self.universes = tuple(sorted({s[0] for segments in self._segments for s in segments}))
        row = {u: k for k, u in enumerate(self.universes)}
        self.pixels = int(self.pixel_offsets[-1])
        total = self.pixels * 3
        # index into the flat RGB frame (3 * pixels, then one 0) of each slot: ``total`` for a slot no tree uses
        gather = np.full((len(self.universes), SLOTS), total, np.intp)
        for k, tree in enumerate(self.trees):
            order = np.array(["RGB".index(c) for c in tree.colour_order])
            for universe, slot, pixel, count in self._segments[k]:
                pixels = self.pixel_offsets[k] + pixel + np.arange(count)
                slots = (slot - 1) + 3 * np.arange(count)[:, None] + np.arange(3)[None, :]
                gather[row[universe], slots] = 3 * pixels[:, None] + order[None, :]
        self._gather = gather
        self._padded = np.zeros(total + 1, np.uint8)

    def slots_of(self, tree_index: int) -> list[tuple[int, int, int, int, int]]:
        """(universe, first slot, last slot, first pixel, pixel count) of each universe the tree spans; slots are
        1-based DMX slots, pixels 0-based within the tree."""
        return [(u, s, s + 3 * n - 1, p, n) for u, s, p, n in self._segments[tree_index]]

    def pack(self, rgb: np.ndarray) -> np.ndarray:
        """The universes' slots, (len(universes), 512) uint8 (a new array), for the frame ``rgb``: (pixels, 3)
        uint8 in R, G, B order, the trees' pixels concatenated. Each tree's colour order is applied; unused slots
        are 0. ValueError for a frame of another shape.

        Not reentrant (one staging buffer): call it from one thread.
        """
        rgb = np.asarray(rgb)
        if rgb.shape != (self.pixels, 3):
            raise ValueError(f"rgb must be ({self.pixels}, 3) uint8, got {rgb.dtype} {rgb.shape}")
        self._padded[:-1] = rgb.reshape(-1)
        return self._padded[self._gather]


@dataclasses.dataclass(frozen=True)
class FixtureMap:
    """The trees, their DMX layout and the universes the output sends (each with the destination of its trees),
    in the order of ``layout.universes`` (the rows of ``layout.pack``)."""

    trees: tuple[Tree, ...]
    layout: DmxLayout
    universes: tuple[Universe, ...]


def _index_where(k: int, key: str | None) -> str:
    return f"trees[{k}]" + (f".{key}" if key else "")


def fixture_map(trees: Sequence[Tree], where: Where = _index_where) -> FixtureMap:
    """The map of ``trees``; FixtureError listing every invalid value, pixels past universe 63999, overlapping
    slots and universes with two destinations."""
    trees = tuple(trees)
    problems = []
    for k, tree in enumerate(trees):
        problems += _value_problems(dataclasses.asdict(tree), where, k)
    if problems:
        raise FixtureError("\n".join(problems))
    problems = _layout_problems(trees, where)
    if problems:
        raise FixtureError("\n".join(problems))
    return _build(trees)


def _build(trees: tuple[Tree, ...]) -> FixtureMap:
    layout = DmxLayout(trees)
    destination = {}
    for tree in trees:
        for universe, *_ in tree_segments(tree):
            destination.setdefault(universe, tree.destination)
    return FixtureMap(trees, layout, tuple(Universe(u, destination[u]) for u in layout.universes))


def generated_fixtures(
    plazas: Sequence[str],
    trees_per_plaza: int,
    pixels_per_tree: int,
    first_universe: int = 1,
    destination: str = "127.0.0.1",
) -> FixtureMap:
    """``trees_per_plaza`` trees ``tree_<plaza>_<k>`` (k from 1) of ``pixels_per_tree`` RGB pixels per plaza, colour
    order RGB, each from slot 1 of the universe after the previous tree's last (the first from ``first_universe``);
    FixtureError when that cannot be laid out."""
    for name, value, low in (("trees_per_plaza", trees_per_plaza, 1), ("pixels_per_tree", pixels_per_tree, 1)):
        if not _whole(value, low, MAX_PIXELS):
            raise FixtureError(f"{name}: must be a whole number >= {low}, got {value!r}")
    if not _whole(first_universe, 1, MAX_UNIVERSE):
        raise FixtureError(f"first_universe: {first_universe!r} is out of range 1..{MAX_UNIVERSE}")
    if isinstance(plazas, str) or not plazas:
        raise FixtureError(f"plazas: must be a list of at least one plaza, got {plazas!r}")
    per_tree = -(-pixels_per_tree // PIXELS_PER_UNIVERSE)
    last = first_universe + len(plazas) * trees_per_plaza * per_tree - 1
    if last > MAX_UNIVERSE:
        raise FixtureError(
            f"{len(plazas)} plazas x {trees_per_plaza} trees x {per_tree} universes from universe {first_universe} "
            f"need universes {first_universe}..{last}, past {MAX_UNIVERSE}"
        )
    trees = [
        Tree(
            f"tree_{plaza}_{k + 1}",
            plaza,
            pixels_per_tree,
            "RGB",
            first_universe + (p * trees_per_plaza + k) * per_tree,
            1,
            destination,
        )
        for p, plaza in enumerate(plazas)
        for k in range(trees_per_plaza)
    ]
    return fixture_map(trees)


def load_fixtures(path: str, default_destination: str = "127.0.0.1") -> FixtureMap:
    """The fixture map in the YAML file ``path`` (trees without a ``destination`` go to ``default_destination``);
    FixtureError listing every problem, each with its file, line and key path."""
    path = str(path)
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except (OSError, UnicodeDecodeError) as error:
        raise FixtureError(f"{path}: {getattr(error, 'strerror', None) or error}") from None
    try:
        document, lines = load_with_lines(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise FixtureError(f"{path}{line}: not valid YAML: {problem}") from None

    def where(k: int, key: str | None) -> str:
        return f"{path}:{line_of(lines, ('trees', k, *([key] if key else [])))}: {_index_where(k, key)}"

    if not isinstance(document, dict):
        got = "an empty file" if document is None else f"a {type(document).__name__}"
        raise FixtureError(f"{path}:{line_of(lines, ())}: expected a mapping with the key 'trees', got {got}")
    entries = document.get("trees")
    if not isinstance(entries, list) or not entries:
        got = "no such key" if "trees" not in document else "an empty list" if entries == [] else repr(entries)
        raise FixtureError(
            f"{path}:{line_of(lines, ('trees',))}: trees: expected a list of at least one tree, got {got}"
        )
    problems = [
        f"{path}:{line_of(lines, (key,))}: {key}: unknown key (known: trees)"
        for key in map(str, document)
        if key != "trees"
    ]
    trees = {}  # entry index -> Tree, for the entries without problems of their own
    for k, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.append(f"{where(k, None)}: must be a mapping with keys {', '.join(KEYS)}")
            continue
        own = []
        unknown = [str(key) for key in entry if key not in KEYS]
        if unknown:
            own.append(f"{where(k, None)}: unknown key(s) {', '.join(unknown)} (known: {', '.join(KEYS)})")
        missing = [key for key in REQUIRED if key not in entry]
        if missing:
            own.append(f"{where(k, None)}: missing key(s) {', '.join(missing)}")
        values = {key: entry[key] for key in KEYS if key in entry}
        values.setdefault("destination", default_destination)
        own += _value_problems(values, where, k, default="destination" not in entry)
        if own:
            problems += own
            continue
        trees[k] = Tree(**values)
    index = list(trees)  # position in the valid trees -> entry index
    valid = tuple(trees.values())

    def where_valid(j: int, key: str | None) -> str:
        return where(index[j], key)

    seen = {}
    for j, tree in enumerate(valid):
        if tree.id in seen:
            problems.append(f"{where_valid(j, 'id')}: {tree.id!r} is also the id of trees[{index[seen[tree.id]]}]")
        seen.setdefault(tree.id, j)
    problems += _layout_problems(valid, where_valid)
    if problems:
        raise FixtureError("\n".join(problems))
    return _build(valid)


def _whole(value, low: int, high: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and low <= value <= high


def _value_problems(values: dict, where: Where, k: int, default: bool = False) -> list[str]:
    """The problems of one tree's values (only the keys present are checked); ``default``: the destination is the
    default one, not the tree's own."""
    problems = []
    if "id" in values:
        tid = values["id"]
        if not (isinstance(tid, str) and TREE_ID.fullmatch(tid) and "__" not in tid):
            problems.append(
                f"{where(k, 'id')}: must be a letter, then up to 63 letters, digits or single underscores (it names "
                f"the topic /trees/<id>/lighting), got {tid!r}"
            )
    if "plaza" in values and not (isinstance(values["plaza"], str) and values["plaza"].strip()):
        problems.append(f"{where(k, 'plaza')}: must be a plaza name (its driver id), got {values['plaza']!r}")
    if "pixels" in values and not _whole(values["pixels"], 1, MAX_PIXELS):
        problems.append(f"{where(k, 'pixels')}: must be a whole number >= 1, got {values['pixels']!r}")
    if "colour_order" in values and values["colour_order"] not in COLOUR_ORDERS:
        problems.append(
            f"{where(k, 'colour_order')}: unknown colour order {values['colour_order']!r} "
            f"(one of {', '.join(COLOUR_ORDERS)})"
        )
    if "universe" in values and not _whole(values["universe"], 1, MAX_UNIVERSE):
        problems.append(f"{where(k, 'universe')}: {values['universe']!r} is out of range 1..{MAX_UNIVERSE}")
    if "start_channel" in values and not _whole(values["start_channel"], 1, MAX_START_CHANNEL):
        problems.append(
            f"{where(k, 'start_channel')}: {values['start_channel']!r} is out of range 1..{MAX_START_CHANNEL} "
            "(a pixel takes 3 slots)"
        )
    if "destination" in values:
        destination = values["destination"]
        label = f"{destination!r} (the default destination)" if default else repr(destination)
        try:
            problem = unicast_problem(ipv4("", destination))
        except ValueError:
            problem = "not an IPv4 address"
        if problem:
            problems.append(f"{where(k, 'destination')}: {label} is {problem}")
    return problems


def _layout_problems(trees: Sequence[Tree], where: Where) -> list[str]:
    """Pixels past universe 63999, slots two trees use, universes sent to two destinations."""
    problems = []
    owner: dict[int, list[tuple[int, int, int]]] = {}  # universe -> (first slot, last slot, tree) of each tree there
    destinations: dict[int, tuple[str, int]] = {}
    for k, tree in enumerate(trees):
        segments = tree_segments(tree)
        if segments[-1][0] > MAX_UNIVERSE:
            problems.append(
                f"{where(k, 'pixels')}: {tree.pixels} pixels from universe {tree.universe} slot "
                f"{tree.start_channel} run past universe {MAX_UNIVERSE} (they need universes "
                f"{tree.universe}..{segments[-1][0]}, {PIXELS_PER_UNIVERSE} whole pixels each)"
            )
            continue
        for universe, slot, _, count in segments:
            first, last = slot, slot + 3 * count - 1
            for other_first, other_last, j in owner.get(universe, []):
                if first <= other_last and other_first <= last:
                    problems.append(
                        f"{where(k, 'universe')}: slots {max(first, other_first)}..{min(last, other_last)} of "
                        f"universe {universe} are used by both trees {trees[j].id!r} and {tree.id!r}"
                    )
            owner.setdefault(universe, []).append((first, last, k))
            seen = destinations.setdefault(universe, (tree.destination, k))
            if seen[0] != tree.destination:
                problems.append(
                    f"{where(k, 'destination')}: universe {universe} goes to {seen[0]} for tree "
                    f"{trees[seen[1]].id!r} but to {tree.destination} for {tree.id!r} (one destination per universe)"
                )
    return problems
