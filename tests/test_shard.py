"""Sharding: balanced, deterministic, every unit exactly once."""

from hypothesis import given
from hypothesis import strategies as st

from selector.nodeids import covered, item_of, prefixes
from selector.shard import Shard, group_of, hashed_shard, make_shards, shard_of


def test_longest_first_stays_within_four_thirds_of_the_optimum() -> None:
    units = {"a": 8.0, "b": 7.0, "c": 6.0, "d": 5.0, "e": 4.0}
    shards = make_shards(units, 2)
    # The optimum is 15 + 15; longest-first gives 8+5+4 and 7+6, within 4/3 of it.
    assert sorted(shard.duration for shard in shards) == [13.0, 17.0]
    assert sorted(unit for shard in shards for unit in shard.units) == sorted(units)


def test_unknown_durations_get_the_median_of_known_ones() -> None:
    shards = make_shards({"a": 1.0, "b": 3.0, "c": 5.0, "new": None}, 1)
    assert shards[0].duration == 12.0


def test_same_inputs_same_shards() -> None:
    units = {f"t{index}": float(index % 7) for index in range(50)}
    assert make_shards(units, 4) == make_shards(dict(reversed(units.items())), 4)


def test_no_shard_is_empty() -> None:
    shards = make_shards({"a": 100.0, "b": 0.001, "c": 0.001}, 3)
    assert all(shard.units for shard in shards)
    assert [shard.units for shard in make_shards({"a": 1.0, "b": 1.0}, 4)] == [("a",), ("b",)]
    assert make_shards({}, 4) == [Shard(1, (), 0.0)]


def test_grouping_by_module_keeps_a_file_together_unless_it_is_too_long() -> None:
    units = {
        "tests/test_a.py::test_1": 1.0,
        "tests/test_a.py::test_2": 1.0,
        "tests/test_b.py::test_1": 1.0,
        "tests/test_b.py::test_2": 1.0,
        "tests/test_big.py::test_1": 10.0,
        "tests/test_big.py::test_2": 10.0,
    }
    shards = make_shards(units, 2, "module")
    placement = {unit: shard.index for shard in shards for unit in shard.units}
    assert placement["tests/test_a.py::test_1"] == placement["tests/test_a.py::test_2"]
    assert placement["tests/test_b.py::test_1"] == placement["tests/test_b.py::test_2"]
    assert placement["tests/test_big.py::test_1"] != placement["tests/test_big.py::test_2"]


def test_group_of() -> None:
    assert group_of("t.py::TestA::test_x", "class") == "t.py::TestA"
    assert group_of("t.py::test_x", "class") == "t.py"
    assert group_of("t.py::TestA::test_x", "module") == "t.py"
    assert group_of("t.py::TestA::test_x", "none") == "t.py::TestA::test_x"


def test_items_and_prefixes_of_node_ids() -> None:
    nodeid = "tests/unit/test_a.py::TestX::test_y[a::b-1]"
    assert item_of(nodeid) == "tests/unit/test_a.py::TestX::test_y"
    assert list(prefixes(nodeid)) == [
        "tests",
        "tests/unit",
        "tests/unit/test_a.py",
        "tests/unit/test_a.py::TestX",
        "tests/unit/test_a.py::TestX::test_y",
        nodeid,
    ]
    assert covered(["tests/unit"], [nodeid, "tests/other.py::t"]) == {nodeid}
    assert covered(["tests/unit/test_a"], [nodeid]) == set()


def test_most_specific_assignment_wins_and_the_rest_is_hashed() -> None:
    assignment = {"tests/test_a.py": 1, "tests/test_a.py::test_slow": 2}
    assert shard_of("tests/test_a.py::test_slow[1]", assignment, 3) == 2
    assert shard_of("tests/test_a.py::test_other", assignment, 3) == 1
    assert shard_of("tests/test_b.py::test_x", assignment, 3) == hashed_shard(
        "tests/test_b.py::test_x", 3
    )


@given(st.dictionaries(st.text(min_size=1), st.floats(0, 1000), min_size=1), st.integers(1, 16))
def test_every_unit_lands_in_exactly_one_shard(units: dict[str, float], count: int) -> None:
    shards = make_shards(units, count)
    placed = [unit for shard in shards for unit in shard.units]
    assert sorted(placed) == sorted(units)
    assert len(shards) == min(count, len(units))
    lower_bound = max(sum(units.values()) / count, *units.values())
    # List scheduling never exceeds the lower bound plus the longest unit.
    assert max(shard.duration for shard in shards) <= lower_bound + max(units.values()) + 0.01
