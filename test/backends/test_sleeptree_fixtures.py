"""The SleepTree fixture map (lumina_nodes.backends.sleeptree.fixtures): the example loads, trees span universes in
whole pixels, packing equals a per-pixel reference, and every mistake in a map is named with its line and key."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import REPO
from lumina_nodes.backends.sleeptree.fixtures import (
    COLOUR_ORDERS,
    FixtureError,
    Tree,
    fixture_map,
    generated_fixtures,
    load_fixtures,
)


def reference_pack(trees, rgb):
    """DMX slots of each universe, pixel by pixel: whole pixels, continuing at slot 1 of the next universe."""
    universes = {}
    offset = 0
    for tree in trees:
        universe, slot = tree.universe, tree.start_channel
        for p in range(tree.pixels):
            if slot + 2 > 512:
                universe, slot = universe + 1, 1
            colour = rgb[offset + p]
            data = universes.setdefault(universe, np.zeros(512, np.uint8))
            for i, name in enumerate(tree.colour_order):
                data[slot - 1 + i] = colour["RGB".index(name)]
            slot += 3
        offset += tree.pixels
    return universes


def test_the_example_map_loads_and_spans_universes_in_whole_pixels():
    fixtures = load_fixtures(str(REPO / "config" / "sleeptree_fixtures.yaml"))
    assert [t.id for t in fixtures.trees][:2] == ["tree_plaza_1_north", "tree_plaza_1_south"]
    assert [u.number for u in fixtures.universes] == [1, 2, 3, 4, 5, 6]
    assert all(u.destination == "127.0.0.1" for u in fixtures.universes)
    # 300 pixels from slot 1: 170 whole pixels in universe 1 (slots 1..510), the other 130 from slot 1 of universe 2
    assert fixtures.layout.slots_of(0) == [(1, 1, 510, 0, 170), (2, 1, 390, 170, 130)]
    rgb = np.random.default_rng(1).integers(0, 256, (int(fixtures.layout.pixel_offsets[-1]), 3), np.uint8)
    packed = fixtures.layout.pack(rgb)
    expected = reference_pack(fixtures.trees, rgb)
    for row, universe in enumerate(fixtures.layout.universes):
        assert np.array_equal(packed[row], expected[universe]), universe
    # GRB: pixel 0's green goes first
    assert list(packed[0, :3]) == [rgb[0, 1], rgb[0, 0], rgb[0, 2]]


def test_a_pixel_never_splits_across_universes():
    fixtures = fixture_map([Tree("t", "p", 3, "RGB", 9, 508)])
    # slots 508..510 hold pixel 0; 511..512 cannot hold a pixel: pixel 1 starts at slot 1 of universe 10
    assert fixtures.layout.slots_of(0) == [(9, 508, 510, 0, 1), (10, 1, 6, 1, 2)]
    packed = fixtures.layout.pack(np.arange(9, dtype=np.uint8).reshape(3, 3) + 1)
    assert list(packed[0, 507:512]) == [1, 2, 3, 0, 0] and list(packed[1, :7]) == [4, 5, 6, 7, 8, 9, 0]


def test_generated_maps_give_each_tree_fresh_universes():
    fixtures = generated_fixtures(["plaza_1", "plaza_2"], 2, 200, first_universe=5)
    assert [t.id for t in fixtures.trees] == ["tree_plaza_1_1", "tree_plaza_1_2", "tree_plaza_2_1", "tree_plaza_2_2"]
    assert [t.universe for t in fixtures.trees] == [5, 7, 9, 11]  # 200 pixels take 2 universes each
    assert len(fixtures.universes) == 8
    with pytest.raises(FixtureError, match="past 63999"):
        generated_fixtures(["p"], 1, 400, first_universe=63999)


@st.composite
def tree_maps(draw):
    """Random valid maps: each tree from its own universe block (no overlaps), random sizes, orders and starts."""
    trees, universe = [], draw(st.integers(1, 100))
    for k in range(draw(st.integers(1, 5))):
        pixels = draw(st.integers(1, 400))
        start = draw(st.integers(1, 510))
        order = draw(st.sampled_from(COLOUR_ORDERS))
        trees.append(Tree(f"t{k}", f"p{k % 2}", pixels, order, universe, start))
        universe += 4  # 400 pixels from any start take at most 4 universes
    return trees


@settings(max_examples=40, deadline=None)
@given(trees=tree_maps(), seed=st.integers(0, 2**31))
def test_pack_equals_the_per_pixel_reference(trees, seed):
    fixtures = fixture_map(trees)
    rgb = np.random.default_rng(seed).integers(0, 256, (sum(t.pixels for t in trees), 3), np.uint8)
    packed = fixtures.layout.pack(rgb)
    expected = reference_pack(trees, rgb)
    assert list(fixtures.layout.universes) == sorted(expected)
    for row, universe in enumerate(fixtures.layout.universes):
        assert np.array_equal(packed[row], expected[universe])


def write(tmp_path, text):
    path = tmp_path / "trees.yaml"
    path.write_text(text)
    return str(path)


TREE = (
    "  - {{id: {id}, plaza: plaza_1, pixels: {pixels}, colour_order: {order}, universe: {universe}, "
    "start_channel: {start}}}\n"
)


def tree(id="a", pixels=10, order="RGB", universe=1, start=1):
    return TREE.format(id=id, pixels=pixels, order=order, universe=universe, start=start)


@pytest.mark.parametrize(
    "text, messages",
    [
        ("trees: [\n", [":2: not valid YAML"]),
        ("- a\n", [":1: expected a mapping with 'trees'"]),
        ("trees: []\n", ["expected a mapping with 'trees'"]),
        ("trees:\n" + tree() + "lights: 1\n", ["unknown key(s) ['lights'] (known: trees)"]),
        ("trees:\n  - {id: a, plaza: plaza_1, pixels: 10}\n", [":2: trees[0]: missing key(s) ['colour_order', "]),
        (
            "trees:\n" + tree() + tree(order="RGW", universe=2),
            [":3: trees[1].colour_order: unknown colour order 'RGW'"],
        ),
        ("trees:\n" + tree(universe=64000), [":2: trees[0].universe: 64000 is out of range 1..63999"]),
        ("trees:\n" + tree(universe=0), ["trees[0].universe: 0 is out of range"]),
        ("trees:\n" + tree(start=511), ["trees[0].start_channel: 511 is out of range 1..510"]),
        ("trees:\n" + tree(pixels=0), ["trees[0].pixels: must be a whole number >= 1, got 0"]),
        ("trees:\n" + tree(pixels="true"), ["trees[0].pixels: must be a whole number >= 1, got True"]),
        ("trees:\n" + tree(pixels=400, universe=63999), ["trees[0].pixels: 400 pixels from universe 63999"]),
        ("trees:\n" + tree() + tree(universe=2), [":3: trees[1].id: 'a' is also the id of trees[0]"]),
        (
            "trees:\n" + tree(pixels=10) + tree(id="b", start=28),
            [":3: trees[1].universe: slots 28..30 of universe 1 are used by trees 'a' and 'b'"],
        ),
        (
            # a's pixels 171..200 spill into slots 1..90 of universe 2
            "trees:\n" + tree(pixels=200) + tree(id="b", universe=2, start=52),
            ["trees[1].universe: slots 52..81 of universe 2 are used by trees 'a' and 'b'"],
        ),
        (
            "trees:\n  - {id: a, plaza: p, pixels: 1, colour_order: RGB, universe: 1, start_channel: 1, "
            "destination: 239.255.0.1}\n",
            ["trees[0].destination: '239.255.0.1' is not a unicast IPv4 address"],
        ),
        (
            "trees:\n  - {id: a, plaza: p, pixels: 1, colour_order: RGB, universe: 1, start_channel: 1, "
            "destination: 10.0.0.1}\n" + tree(id="b", start=100),
            ["trees[1].destination: universe 1 goes to 10.0.0.1 for tree 'a' but to 127.0.0.1 for 'b'"],
        ),
        (
            # every problem at once, each with its own line
            "trees:\n" + tree(order="XYZ") + tree(id="b", universe=70000),
            [":2: trees[0].colour_order", ":3: trees[1].universe"],
        ),
    ],
)
def test_map_errors_name_the_line_and_key(tmp_path, text, messages):
    path = write(tmp_path, text)
    with pytest.raises(FixtureError) as error:
        load_fixtures(path)
    for message in messages:
        assert message in str(error.value), str(error.value)
    assert str(error.value).startswith(path)


def test_a_missing_file_is_named():
    with pytest.raises(FixtureError, match="/nonexistent/trees.yaml: No such file"):
        load_fixtures("/nonexistent/trees.yaml")
