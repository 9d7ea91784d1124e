"""The SleepTree fixture map (lumina_nodes.backends.sleeptree.fixtures): the example loads, trees span universes in
whole pixels, packing equals a per-pixel reference, and every mistake in a map is named with its file, line and
key path, all at once."""

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
            if slot + 2 > 512:  # the pixel's 3 slots do not fit: the next universe
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
    assert [u.number for u in fixtures.universes] == [1, 2, 3, 4, 5, 6] == list(fixtures.layout.universes)
    assert all(u.destination == "127.0.0.1" for u in fixtures.universes)
    assert list(fixtures.layout.pixel_offsets) == [0, 300, 450, 600, 620, 770, 920]
    # 300 pixels from slot 1: 170 whole pixels in universe 1 (slots 1..510), pixel 171 (index 170) and the other
    # 129 from slot 1 of universe 2
    assert fixtures.layout.slots_of(0) == [(1, 1, 510, 0, 170), (2, 1, 390, 170, 130)]
    assert fixtures.layout.slots_of(3) == [(4, 451, 510, 0, 20)]
    rgb = np.random.default_rng(1).integers(0, 256, (920, 3), np.uint8)
    packed = fixtures.layout.pack(rgb)
    assert packed.shape == (6, 512) and packed.dtype == np.uint8
    expected = reference_pack(fixtures.trees, rgb)
    for row, universe in enumerate(fixtures.layout.universes):
        assert np.array_equal(packed[row], expected[universe]), universe
    # GRB: pixel 1's green goes first; pixel 171 starts universe 2
    assert list(packed[0, :3]) == [rgb[0, 1], rgb[0, 0], rgb[0, 2]]
    assert list(packed[1, :3]) == [rgb[170, 1], rgb[170, 0], rgb[170, 2]]
    assert not packed[0, 510:].any()


def test_a_pixel_never_splits_across_universes():
    fixtures = fixture_map([Tree("t", "p", 3, "RGB", 9, 508)])
    # slots 508..510 hold pixel 0; 511..512 cannot hold a pixel: pixel 1 starts at slot 1 of universe 10
    assert fixtures.layout.slots_of(0) == [(9, 508, 510, 0, 1), (10, 1, 6, 1, 2)]
    packed = fixtures.layout.pack(np.arange(9, dtype=np.uint8).reshape(3, 3) + 1)
    assert list(packed[0, 507:512]) == [1, 2, 3, 0, 0] and list(packed[1, :7]) == [4, 5, 6, 7, 8, 9, 0]
    # from slot 510 one pixel fits exactly (510..512); 170 pixels from slot 1 fill one universe and no more
    assert fixture_map([Tree("t", "p", 2, "RGB", 9, 510)]).layout.slots_of(0) == [(9, 510, 512, 0, 1), (10, 1, 3, 1, 1)]
    assert fixture_map([Tree("t", "p", 170, "RGB", 9, 1)]).layout.slots_of(0) == [(9, 1, 510, 0, 170)]
    assert fixture_map([Tree("t", "p", 171, "RGB", 9, 1)]).layout.slots_of(0)[1] == (10, 1, 3, 170, 1)


def test_generated_maps_give_each_tree_fresh_universes():
    fixtures = generated_fixtures(["plaza_1", "plaza_2"], 2, 200, first_universe=5, destination="127.0.0.1")
    assert [t.id for t in fixtures.trees] == ["tree_plaza_1_1", "tree_plaza_1_2", "tree_plaza_2_1", "tree_plaza_2_2"]
    assert [t.plaza for t in fixtures.trees] == ["plaza_1", "plaza_1", "plaza_2", "plaza_2"]
    assert [t.universe for t in fixtures.trees] == [5, 7, 9, 11]  # 200 pixels take 2 universes each
    assert {(t.colour_order, t.start_channel, t.pixels) for t in fixtures.trees} == {("RGB", 1, 200)}
    assert [u.number for u in fixtures.universes] == list(range(5, 13))
    one = generated_fixtures(["plaza_1"], 3, 170)  # exactly one universe each
    assert [t.universe for t in one.trees] == [1, 2, 3] and len(one.universes) == 3


@pytest.mark.parametrize(
    "arguments, message",
    [
        ((["p"], 1, 400, 63999), "need universes 63999..64001, past 63999"),
        ((["p"], 0, 10), "trees_per_plaza: must be a whole number >= 1, got 0"),
        ((["p"], 1, 0), "pixels_per_tree: must be a whole number >= 1, got 0"),
        ((["p"], 1, 10, 0), "first_universe: 0 is out of range 1..63999"),
        (([], 1, 10), "plazas: must be a list of at least one plaza"),
        ((["plaza-1"], 1, 10), "trees[0].id: must be a letter, then up to 63 letters, digits or single underscores"),
        ((["p"], 1, 10, 1, "10.0.0"), "trees[0].destination: '10.0.0' is not an IPv4 address"),
    ],
)
def test_generated_maps_that_cannot_be_laid_out_are_refused(arguments, message):
    with pytest.raises(FixtureError) as error:
        generated_fixtures(*arguments)
    assert message in str(error.value)


@st.composite
def tree_maps(draw):
    """Random valid maps: trees one after the other with random gaps (sharing universes, spanning several,
    from any start), random sizes and colour orders."""
    trees, universe, slot = [], draw(st.integers(1, 100)), draw(st.integers(1, 510))
    for k in range(draw(st.integers(1, 6))):
        pixels = draw(st.integers(1, 400))
        order = draw(st.sampled_from(COLOUR_ORDERS))
        trees.append(Tree(f"t{k}", f"p{k % 2}", pixels, order, universe, slot))
        for _ in range(pixels):  # walk to the tree's end, pixel by pixel
            if slot + 2 > 512:
                universe, slot = universe + 1, 1
            slot += 3
        slot += draw(st.integers(0, 40))
        if slot > 510 or draw(st.booleans()):
            universe, slot = universe + draw(st.integers(1, 3)), draw(st.integers(1, 510))
    return trees


@settings(max_examples=60, deadline=None)
@given(trees=tree_maps(), seed=st.integers(0, 2**31))
def test_pack_equals_the_per_pixel_reference(trees, seed):
    fixtures = fixture_map(trees)
    rgb = np.random.default_rng(seed).integers(0, 256, (sum(t.pixels for t in trees), 3), np.uint8)
    packed = fixtures.layout.pack(rgb)
    expected = reference_pack(trees, rgb)
    assert list(fixtures.layout.universes) == sorted(expected) == [u.number for u in fixtures.universes]
    for row, universe in enumerate(fixtures.layout.universes):
        assert np.array_equal(packed[row], expected[universe])
    for k, tree in enumerate(trees):
        spans = fixtures.layout.slots_of(k)
        assert sum(n for *_, n in spans) == tree.pixels == np.diff(fixtures.layout.pixel_offsets)[k]


def test_pack_refuses_a_frame_of_the_wrong_size():
    layout = fixture_map([Tree("t", "p", 3, "RGB", 1, 1)]).layout
    with pytest.raises(ValueError, match=r"rgb must be \(3, 3\) uint8, got uint8 \(4, 3\)"):
        layout.pack(np.zeros((4, 3), np.uint8))


def write(tmp_path, text):
    path = tmp_path / "trees.yaml"
    path.write_text(text)
    return str(path)


TREE = (
    "  - {{id: {id}, plaza: plaza_1, pixels: {pixels}, colour_order: {order}, universe: {universe}, "
    "start_channel: {start}{extra}}}\n"
)


def tree(id="a", pixels=10, order="RGB", universe=1, start=1, extra=""):
    return TREE.format(id=id, pixels=pixels, order=order, universe=universe, start=start, extra=extra)


@pytest.mark.parametrize(
    "text, messages",
    [
        ("trees: [\n", [":2: not valid YAML: "]),
        ("trees:\n" + tree() + "  - {id: b, plaza: [}\n", [":3: not valid YAML: "]),
        ("- a\n", [":1: expected a mapping with the key 'trees', got a list"]),
        ("", [":1: expected a mapping with the key 'trees', got an empty file"]),
        ("trees: []\n", [":1: trees: expected a list of at least one tree, got an empty list"]),
        ("trees: 3\n", [":1: trees: expected a list of at least one tree, got 3"]),
        ("tree:\n" + tree(), [":1: trees: expected a list of at least one tree, got no such key"]),
        ("trees:\n" + tree() + "lights: 1\n", [":3: lights: unknown key (known: trees)"]),
        ("trees:\n  - 5\n", [":2: trees[0]: must be a mapping with keys id, plaza, pixels,"]),
        (
            "trees:\n" + tree(extra=", colour: red, size: 2"),
            [":2: trees[0]: unknown key(s) colour, size (known: id, plaza, pixels, colour_order, universe, "],
        ),
        (
            "trees:\n  - {id: a, plaza: plaza_1, pixels: 10}\n",
            [":2: trees[0]: missing key(s) colour_order, universe, start_channel"],
        ),
        (
            "trees:\n" + tree() + tree(id="b", order="RGW", universe=2),
            [":3: trees[1].colour_order: unknown colour order 'RGW' (one of RGB, RBG, GRB, GBR, BRG, BGR)"],
        ),
        ("trees:\n" + tree(universe=64000), [":2: trees[0].universe: 64000 is out of range 1..63999"]),
        ("trees:\n" + tree(universe=0), [":2: trees[0].universe: 0 is out of range 1..63999"]),
        ("trees:\n" + tree(universe="'1'"), [":2: trees[0].universe: '1' is out of range 1..63999"]),
        ("trees:\n" + tree(start=511), [":2: trees[0].start_channel: 511 is out of range 1..510"]),
        ("trees:\n" + tree(start=0), [":2: trees[0].start_channel: 0 is out of range 1..510"]),
        ("trees:\n" + tree(pixels=0), [":2: trees[0].pixels: must be a whole number >= 1, got 0"]),
        ("trees:\n" + tree(pixels="true"), [":2: trees[0].pixels: must be a whole number >= 1, got True"]),
        ("trees:\n" + tree(pixels=2.5), [":2: trees[0].pixels: must be a whole number >= 1, got 2.5"]),
        ("trees:\n" + tree(id=7), [":2: trees[0].id: must be a letter, then up to 63 letters, digits or single"]),
        (
            "trees:\n" + tree(id="north-1"),
            [
                ":2: trees[0].id: must be a letter, then up to 63 letters, digits or single underscores "
                "(it names the topic /trees/<id>/lighting), got 'north-1'"
            ],
        ),
        ("trees:\n" + tree(extra=", plaza: ''").replace("plaza: plaza_1, ", ""), [":2: trees[0].plaza: must be"]),
        (
            "trees:\n" + tree(pixels=400, universe=63999),
            [":2: trees[0].pixels: 400 pixels from universe 63999 slot 1 run past universe 63999"],
        ),
        ("trees:\n" + tree() + tree(universe=2), [":3: trees[1].id: 'a' is also the id of trees[0]"]),
        (
            "trees:\n" + tree(pixels=10) + tree(id="b", start=28),
            [":3: trees[1].universe: slots 28..30 of universe 1 are used by both trees 'a' and 'b'"],
        ),
        (
            # a's pixels 171..200 spill into slots 1..90 of universe 2
            "trees:\n" + tree(pixels=200) + tree(id="b", universe=2, start=52),
            [":3: trees[1].universe: slots 52..81 of universe 2 are used by both trees 'a' and 'b'"],
        ),
        (
            "trees:\n" + tree(extra=", destination: 239.255.0.1"),
            [":2: trees[0].destination: '239.255.0.1' is a multicast address"],
        ),
        (
            "trees:\n" + tree(extra=", destination: 255.255.255.255"),
            [":2: trees[0].destination: '255.255.255.255' is the broadcast address"],
        ),
        (
            "trees:\n" + tree(extra=", destination: controller.local"),
            [":2: trees[0].destination: 'controller.local' is not an IPv4 address"],
        ),
        (
            "trees:\n" + tree(extra=", destination: 10.0.0.1") + tree(id="b", start=100),
            [
                ":3: trees[1].destination: universe 1 goes to 10.0.0.1 for tree 'a' but to 127.0.0.1 for 'b' "
                "(one destination per universe)"
            ],
        ),
        (
            # block style, as the example map is written: each key's own line
            "trees:\n  - id: a\n    plaza: plaza_1\n    pixels: 10\n    colour_order: RGB\n    universe: 1\n"
            "    start_channel: 1\n  - id: b\n    plaza: plaza_1\n    pixels: 10\n    colour_order: RGB\n"
            "    universe: 70000\n    start_channel: 1\n    lights: on\n",
            [":8: trees[1]: unknown key(s) lights", ":12: trees[1].universe: 70000 is out of range 1..63999"],
        ),
        (
            # every problem at once, each with its own line: values, and the layout of the trees that are valid
            "trees:\n"
            + tree(order="XYZ")
            + tree(id="b", universe=70000)
            + tree(id="c", universe=5)
            + tree(id="d", universe=5, start=4)
            + "  - {id: e,\n     plaza: p, pixels: 1, colour_order: RGB, universe: 9,\n     start_channel: 600}\n",
            [
                ":2: trees[0].colour_order",
                ":3: trees[1].universe",
                ":5: trees[3].universe: slots 4..30 of universe 5 are used by both trees 'c' and 'd'",
                ":8: trees[4].start_channel: 600 is out of range",
            ],
        ),
    ],
)
def test_map_errors_name_the_file_line_and_key(tmp_path, text, messages):
    path = write(tmp_path, text)
    with pytest.raises(FixtureError) as error:
        load_fixtures(path)
    for message in messages:
        assert path + message in str(error.value), str(error.value)
    lines = str(error.value).split("\n")
    assert len(lines) == len(messages) and all(line.startswith(path + ":") for line in lines), lines


def test_a_bad_default_destination_is_named_as_the_default(tmp_path):
    with pytest.raises(FixtureError) as error:
        load_fixtures(write(tmp_path, "trees:\n" + tree() + tree(id="b", universe=2)), default_destination="x")
    assert str(error.value).split("\n") == [
        f"{tmp_path}/trees.yaml:2: trees[0].destination: 'x' (the default destination) is not an IPv4 address",
        f"{tmp_path}/trees.yaml:3: trees[1].destination: 'x' (the default destination) is not an IPv4 address",
    ]


def test_trees_without_a_destination_take_the_default(tmp_path):
    path = write(tmp_path, "trees:\n" + tree() + tree(id="b", universe=2, extra=", destination: 127.0.0.1"))
    fixtures = load_fixtures(path, default_destination="127.0.0.2")
    assert [(u.number, u.destination) for u in fixtures.universes] == [(1, "127.0.0.2"), (2, "127.0.0.1")]


def test_a_missing_file_is_named():
    with pytest.raises(FixtureError, match="/nonexistent/trees.yaml: No such file"):
        load_fixtures("/nonexistent/trees.yaml")


def test_trees_given_in_code_are_checked_too():
    with pytest.raises(FixtureError) as error:
        fixture_map([Tree("a", "p", 1, "RGBW", 1, 1), Tree("b", "p", 0, "RGB", 1, 1)])
    assert str(error.value).split("\n") == [
        "trees[0].colour_order: unknown colour order 'RGBW' (one of RGB, RBG, GRB, GBR, BRG, BGR)",
        "trees[1].pixels: must be a whole number >= 1, got 0",
    ]
