"""The fixture map of the SleepTrees and its DMX layout (no rclpy).

A fixture map is YAML (``config/sleeptree_fixtures.yaml`` is the example)::

    trees:
      - id: tree_plaza_1_north   # unique; names the topic /trees/<id>/lighting
        plaza: plaza_1           # the plaza (driver id) whose state the tree shows
        pixels: 300              # RGB pixels, 3 DMX slots each
        colour_order: GRB        # the order the fixture takes a pixel's 3 slots: RGB RBG GRB GBR BRG BGR
        universe: 1              # 1..63999
        start_channel: 1         # slot of the first pixel's first colour, 1..510
        destination: 10.0.0.20   # optional: the controller's address (default: the node's sacn_destination)

A tree whose pixels do not fit in its universe continues at slot 1 of the next universe, and the next: whole
pixels only, a pixel's 3 slots never split across universes (so a full universe holds 170 pixels), as pixel
controllers count. Errors name the file, line and key, and every problem is reported at once, e.g.
``trees.yaml:9: trees[1].universe: 64000 is out of range 1..63999``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools

import numpy as np
import yaml

from .base import SLOTS, Universe

MAX_UNIVERSE = 63999
COLOUR_ORDERS = tuple("".join(p) for p in itertools.permutations("RGB"))
KEYS = ("id", "plaza", "pixels", "colour_order", "universe", "start_channel", "destination")
REQUIRED = ("id", "plaza", "pixels", "colour_order", "universe", "start_channel")
PIXELS_PER_UNIVERSE = SLOTS // 3  # 170 whole pixels


class FixtureError(ValueError):
    """A fixture map that cannot work; the message lists every problem, one per line."""


@dataclasses.dataclass(frozen=True)
class Tree:
    """One tree and where its pixels sit in DMX."""

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
        In map order; the frame's pixels are the trees' pixels concatenated in this order.
    """

    def __init__(self, trees):
        self.trees = tuple(trees)
        counts = np.array([t.pixels for t in self.trees], np.int64)
        #: tree k's pixels are rows pixel_offsets[k]:pixel_offsets[k + 1] of the frame
        self.pixel_offsets = np.concatenate(([0], np.cumsum(counts)))
        self._segments = [tree_segments(t) for t in self.trees]
        #: the universe numbers in use, ascending: the rows of :meth:`pack`'s result
        self.universes = tuple(sorted({s[0] for segments in self._segments for s in segments}))
        row = {u: k for k, u in enumerate(self.universes)}
        total = int(self.pixel_offsets[-1]) * 3
        # index into the flat RGB frame (length 3 * pixels) of each slot; ``total`` is a zero appended for empty slots
        gather = np.full((len(self.universes), SLOTS), total, np.int64)
        for k, tree in enumerate(self.trees):
            order = np.array(["RGB".index(c) for c in tree.colour_order])
            for universe, slot, pixel, count in self._segments[k]:
                pixels = self.pixel_offsets[k] + pixel + np.arange(count)
                slots = (slot - 1) + 3 * np.arange(count)[:, None] + np.arange(3)[None, :]
                gather[row[universe], slots] = 3 * pixels[:, None] + order[None, :]
        self._gather = gather
        self._padded = np.zeros(total + 1, np.uint8)

    def slots_of(self, tree_index: int) -> list[tuple[int, int, int, int, int]]:
        """(universe, first slot, last slot, first pixel, pixel count) of each universe the tree spans."""
        return [(u, s, s + 3 * n - 1, p, n) for u, s, p, n in self._segments[tree_index]]

    def pack(self, rgb: np.ndarray) -> np.ndarray:
        """The universes' slots (len(universes), 512) uint8 for a frame ``rgb`` (pixels, 3) uint8 in R, G, B order."""
        self._padded[:-1] = np.asarray(rgb, np.uint8).reshape(-1)
        return self._padded[self._gather]


@dataclasses.dataclass(frozen=True)
class FixtureMap:
    """The trees, their DMX layout and the universes the output sends (with each one's destination)."""

    trees: tuple[Tree, ...]
    layout: DmxLayout
    universes: tuple[Universe, ...]


def fixture_map(trees, where=lambda k, key: f"trees[{k}].{key}") -> FixtureMap:
    """The map of valid ``trees``; FixtureError for overlapping slots or a universe with two destinations."""
    problems = []
    owner = {}  # (universe) -> list of (first, last, tree index)
    destinations = {}
    for k, tree in enumerate(trees):
        for universe, slot, _, count in tree_segments(tree):
            if universe > MAX_UNIVERSE:
                problems.append(
                    f"{where(k, 'pixels')}: {tree.pixels} pixels from universe {tree.universe} slot "
                    f"{tree.start_channel} run past universe {MAX_UNIVERSE}"
                )
                break
            first, last = slot, slot + 3 * count - 1
            for other_first, other_last, j in owner.get(universe, []):
                if first <= other_last and other_first <= last:
                    problems.append(
                        f"{where(k, 'universe')}: slots {max(first, other_first)}..{min(last, other_last)} of "
                        f"universe {universe} are used by trees {trees[j].id!r} and {tree.id!r}"
                    )
            owner.setdefault(universe, []).append((first, last, k))
            seen = destinations.setdefault(universe, (tree.destination, k))
            if seen[0] != tree.destination:
                problems.append(
                    f"{where(k, 'destination')}: universe {universe} goes to {seen[0]} for tree "
                    f"{trees[seen[1]].id!r} but to {tree.destination} for {tree.id!r}"
                )
    if problems:
        raise FixtureError("\n".join(problems))
    layout = DmxLayout(trees)
    return FixtureMap(tuple(trees), layout, tuple(Universe(u, destinations[u][0]) for u in layout.universes))


def generated_fixtures(
    plazas, trees_per_plaza: int, pixels_per_tree: int, first_universe: int = 1, destination: str = "127.0.0.1"
) -> FixtureMap:
    """``trees_per_plaza`` trees ``tree_<plaza>_<k>`` (k from 1) of ``pixels_per_tree`` RGB pixels per plaza, each
    from slot 1 of the universe after the previous tree's last."""
    trees, universe = [], first_universe
    for plaza in plazas:
        for k in range(1, trees_per_plaza + 1):
            trees.append(Tree(f"tree_{plaza}_{k}", plaza, pixels_per_tree, "RGB", universe, 1, destination))
            universe += -(-pixels_per_tree // PIXELS_PER_UNIVERSE)
    if universe - 1 > MAX_UNIVERSE:
        raise FixtureError(f"the generated trees need universes {first_universe}..{universe - 1}, past {MAX_UNIVERSE}")
    return fixture_map(trees)


def load_fixtures(path: str, default_destination: str = "127.0.0.1") -> FixtureMap:
    """The fixture map in the YAML file ``path``; FixtureError listing every problem with its line and key."""
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except OSError as error:
        raise FixtureError(f"{path}: {error.strerror or error}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise FixtureError(f"{path}{line}: not valid YAML: {getattr(error, 'problem', error)}") from None
    lines = _lines(root)

    def where(k, key=None):
        line = lines.get((k, key), lines.get((k, None), lines.get("trees", 1)))
        return f"{path}:{line}: trees[{k}]" + (f".{key}" if key else "")

    if not isinstance(document, dict) or not isinstance(document.get("trees"), list) or not document["trees"]:
        raise FixtureError(f"{path}:{lines.get('trees', 1)}: expected a mapping with 'trees', a list of trees")
    unknown_top = sorted(set(map(str, document)) - {"trees"})
    problems = [f"{path}:1: unknown key(s) {unknown_top} (known: trees)"] if unknown_top else []
    trees = []
    for k, entry in enumerate(document["trees"]):
        tree = _tree(entry, k, where, default_destination, problems)
        if tree is not None:
            trees.append((k, tree))
    seen = {}
    for k, tree in trees:
        if tree.id in seen:
            problems.append(f"{where(k, 'id')}: {tree.id!r} is also the id of trees[{seen[tree.id]}]")
        seen.setdefault(tree.id, k)
    if problems:
        raise FixtureError("\n".join(problems))
    index = [k for k, _ in trees]
    return fixture_map([t for _, t in trees], where=lambda j, key: where(index[j], key))


def _lines(root) -> dict:
    """Line (1-based) of the 'trees' key, of each tree (k, None) and of each of its keys (k, key)."""
    lines = {}
    if not isinstance(root, yaml.MappingNode):
        return lines
    for key, value in root.value:
        if key.value == "trees":
            lines["trees"] = key.start_mark.line + 1
            if isinstance(value, yaml.SequenceNode):
                for k, item in enumerate(value.value):
                    lines[(k, None)] = item.start_mark.line + 1
                    if isinstance(item, yaml.MappingNode):
                        for item_key, item_value in item.value:
                            lines[(k, item_key.value)] = item_value.start_mark.line + 1
    return lines


def _whole(value, low, high):
    return not isinstance(value, bool) and isinstance(value, int) and low <= value <= high


def _tree(entry, k, where, default_destination, problems) -> Tree | None:
    """The tree of one map entry, or None with its problems appended."""
    if not isinstance(entry, dict):
        problems.append(f"{where(k)}: must be a mapping with keys {', '.join(KEYS)}")
        return None
    before = len(problems)
    unknown = sorted(set(map(str, entry)) - set(KEYS))
    if unknown:
        problems.append(f"{where(k)}: unknown key(s) {unknown} (known: {', '.join(KEYS)})")
    missing = [key for key in REQUIRED if key not in entry]
    if missing:
        problems.append(f"{where(k)}: missing key(s) {missing}")
    value = {key: entry.get(key) for key in KEYS}
    if "id" in entry and not (isinstance(value["id"], str) and 1 <= len(value["id"]) <= 64):
        problems.append(f"{where(k, 'id')}: must be a text of 1..64 characters, got {value['id']!r}")
    if "plaza" in entry and not (isinstance(value["plaza"], str) and value["plaza"]):
        problems.append(f"{where(k, 'plaza')}: must be a plaza name (the driver id), got {value['plaza']!r}")
    if "pixels" in entry and not _whole(value["pixels"], 1, PIXELS_PER_UNIVERSE * MAX_UNIVERSE):
        problems.append(f"{where(k, 'pixels')}: must be a whole number >= 1, got {value['pixels']!r}")
    if "colour_order" in entry and value["colour_order"] not in COLOUR_ORDERS:
        problems.append(
            f"{where(k, 'colour_order')}: unknown colour order {value['colour_order']!r} "
            f"(one of {', '.join(COLOUR_ORDERS)})"
        )
    if "universe" in entry and not _whole(value["universe"], 1, MAX_UNIVERSE):
        problems.append(f"{where(k, 'universe')}: {value['universe']!r} is out of range 1..{MAX_UNIVERSE}")
    if "start_channel" in entry and not _whole(value["start_channel"], 1, SLOTS - 2):
        problems.append(
            f"{where(k, 'start_channel')}: {value['start_channel']!r} is out of range 1..{SLOTS - 2} "
            "(a pixel takes 3 slots)"
        )
    destination = value["destination"] if "destination" in entry else default_destination
    try:
        address = ipaddress.IPv4Address(destination)
        if address.is_multicast or address.is_unspecified or destination == "255.255.255.255":
            raise ValueError
    except (ValueError, TypeError):
        problems.append(f"{where(k, 'destination')}: {destination!r} is not a unicast IPv4 address")
    if len(problems) > before:
        return None
    return Tree(
        value["id"],
        value["plaza"],
        value["pixels"],
        value["colour_order"],
        value["universe"],
        value["start_channel"],
        destination,
    )
