"""Tests for coarse2fine.data.taxonomy and the built-in taxonomies."""

from __future__ import annotations

import json

import numpy as np
import pytest

from coarse2fine.data.taxonomy import (
  BUILTIN_TAXONOMIES,
  CIFAR10_CLASSES,
  CIFAR68_REMOVED,
  CIFAR100_CLASSES,
  CIFAR_SI_KEEP,
  DIGITS_CLASSES,
  FASHION_MNIST_CLASSES,
  Taxonomy,
  cifar_si_keep,
  get_taxonomy,
)


@pytest.fixture
def small() -> Taxonomy:
  # fine ids: a=0, b=1, c=2, d=3; coarse ids: X=0, Y=1
  return Taxonomy("small", ("a", "b", "c", "d"), ("X", "Y"), np.array([1, 0, 1, 0]))


# ------------------------------------------------------------------ validation


def test_fine_without_valid_parent_names_the_class():
  with pytest.raises(ValueError, match="'b'"):
    Taxonomy("t", ("a", "b"), ("X",), np.array([0, 3]))
  with pytest.raises(ValueError, match="'a'"):
    Taxonomy("t", ("a", "b"), ("X",), np.array([-1, 0]))


def test_empty_coarse_class_is_named():
  with pytest.raises(ValueError, match="without any fine child.*'Z'"):
    Taxonomy("t", ("a", "b"), ("X", "Z"), np.array([0, 0]))
  with pytest.raises(ValueError, match="'Empty'"):
    Taxonomy.from_groups("t", {"X": ["a"], "Empty": []})


def test_duplicate_and_empty_names_rejected():
  with pytest.raises(ValueError, match="unique.*'a'"):
    Taxonomy("t", ("a", "a"), ("X",), np.array([0, 0]))
  with pytest.raises(ValueError, match="unique.*'X'"):
    Taxonomy("t", ("a", "b"), ("X", "X"), np.array([0, 1]))
  with pytest.raises(ValueError, match="non-empty"):
    Taxonomy("t", ("a", ""), ("X",), np.array([0, 0]))
  # A fine class listed under two coarse classes would have two parents.
  with pytest.raises(ValueError, match="unique.*'a'"):
    Taxonomy.from_groups("t", {"X": ["a"], "Y": ["a", "b"]})


def test_length_mismatch_rejected():
  with pytest.raises(ValueError, match="shape"):
    Taxonomy("t", ("a", "b", "c"), ("X",), np.array([0, 0]))


def test_fine_to_coarse_is_read_only_copy():
  parents = np.array([0, 0, 1])
  tax = Taxonomy("t", ("a", "b", "c"), ("X", "Y"), parents)
  parents[0] = 1
  assert tax.fine_to_coarse.tolist() == [0, 0, 1]
  assert tax.fine_to_coarse.dtype == np.int32
  with pytest.raises(ValueError):
    tax.fine_to_coarse[0] = 1


# --------------------------------------------------------------------- queries


def test_relation_matrix_matches_brute_force(small):
  rng = np.random.default_rng(0)
  parents = np.concatenate([np.arange(7), rng.integers(0, 7, size=30)])
  rng.shuffle(parents)
  tax = Taxonomy("r", tuple(f"f{i}" for i in range(37)), tuple(f"c{j}" for j in range(7)), parents)
  expected = np.zeros((37, 7), dtype=np.float32)
  for k in range(37):
    for c in range(7):
      if parents[k] == c:
        expected[k, c] = 1.0
  mat = tax.relation_matrix()
  assert mat.dtype == np.float32
  np.testing.assert_array_equal(mat, expected)
  assert small.relation_matrix(np.int64).tolist() == [[0, 1], [1, 0], [0, 1], [1, 0]]


def test_children_and_coarse_of(small):
  assert small.num_fine == 4 and small.num_coarse == 2
  assert small.children(0).tolist() == [1, 3]
  assert small.children(1).tolist() == [0, 2]
  assert small.coarse_of([0, 1, 2, 3, 3]).tolist() == [1, 0, 1, 0, 0]
  assert small.coarse_of(np.array([[2], [1]])).shape == (2, 1)
  with pytest.raises(ValueError, match="coarse id 2"):
    small.children(2)


@pytest.mark.parametrize("bad", [[0, 4], [-1], [7, 1]])
def test_coarse_of_rejects_out_of_range(small, bad):
  with pytest.raises(ValueError, match=r"\[0, 4\)"):
    small.coarse_of(bad)


# ---------------------------------------------------------------- constructors


def test_from_mapping_orders():
  pairs = [("cat", "animal"), ("car", "vehicle"), ("dog", "animal")]
  tax = Taxonomy.from_mapping("m", pairs)
  assert tax.fine_names == ("cat", "car", "dog")
  assert tax.coarse_names == ("animal", "vehicle")
  assert tax.fine_to_coarse.tolist() == [0, 1, 0]

  tax = Taxonomy.from_mapping(
    "m", dict(pairs), fine_order=["dog", "cat", "car"], coarse_order=["vehicle", "animal"]
  )
  assert tax.fine_names == ("dog", "cat", "car")
  assert tax.fine_to_coarse.tolist() == [1, 1, 0]

  with pytest.raises(ValueError, match="missing from fine_order.*'car'"):
    Taxonomy.from_mapping("m", pairs, fine_order=["cat", "dog"])
  with pytest.raises(ValueError, match="unknown classes.*'boat'"):
    Taxonomy.from_mapping("m", pairs, coarse_order=["animal", "vehicle", "boat"])


def test_from_groups_fine_order():
  groups = {"V": ["car", "bus"], "A": ["cat"]}
  tax = Taxonomy.from_groups("g", groups)
  assert tax.fine_names == ("car", "bus", "cat")
  assert tax.coarse_names == ("V", "A")
  tax = Taxonomy.from_groups("g", groups, fine_order=["cat", "bus", "car"])
  assert tax.fine_to_coarse.tolist() == [1, 0, 0]


# ----------------------------------------------------------------------- files


def test_from_json_groups_form(tmp_path):
  path = tmp_path / "groups.json"
  path.write_text(json.dumps({"V": ["car", "bus"], "A": ["cat"], "fine_order": ["cat", "car", "bus"]}))
  tax = Taxonomy.from_file(path)
  assert tax.name == "groups"
  assert tax.fine_names == ("cat", "car", "bus")
  assert tax.coarse_names == ("V", "A")
  assert tax.fine_to_coarse.tolist() == [1, 0, 0]


def test_from_json_mapping_form(tmp_path):
  path = tmp_path / "map.json"
  data = {"fine_to_coarse": {"cat": "A", "car": "V", "dog": "A"}, "coarse_order": ["V", "A"]}
  path.write_text(json.dumps(data))
  tax = Taxonomy.from_file(path, name="custom")
  assert tax.name == "custom"
  assert tax.fine_names == ("cat", "car", "dog")
  assert tax.coarse_names == ("V", "A")
  assert tax.fine_to_coarse.tolist() == [1, 0, 1]


def test_from_json_invalid_names_file(tmp_path):
  path = tmp_path / "broken.json"
  path.write_text("{not json")
  with pytest.raises(ValueError, match="broken.json.*not valid JSON"):
    Taxonomy.from_file(path)
  path.write_text(json.dumps({"A": ["x"], "B": []}))
  with pytest.raises(ValueError, match="broken.json.*'B'"):
    Taxonomy.from_file(path)


def test_from_csv_with_header_comments_and_blanks(tmp_path):
  path = tmp_path / "tax.csv"
  path.write_text("fine,coarse\n# a comment\n\ncat, animal\ncar,vehicle\n\ndog,animal\n")
  tax = Taxonomy.from_file(path)
  assert tax.fine_names == ("cat", "car", "dog")
  assert tax.coarse_names == ("animal", "vehicle")
  assert tax.fine_to_coarse.tolist() == [0, 1, 0]


def test_from_csv_malformed_row_names_file_and_line(tmp_path):
  path = tmp_path / "bad.csv"
  path.write_text("fine,coarse\ncat,animal\n\ndog\n")
  with pytest.raises(ValueError, match=r"bad\.csv.*line 4"):
    Taxonomy.from_file(path)
  path.write_text("cat,animal\ncat,vehicle\n")
  with pytest.raises(ValueError, match=r"line 2.*'cat'.*line 1"):
    Taxonomy.from_file(path)


def test_from_file_unsupported_or_missing(tmp_path):
  with pytest.raises(ValueError, match="does not exist"):
    Taxonomy.from_file(tmp_path / "nope.json")
  path = tmp_path / "tax.yaml"
  path.write_text("a: b\n")
  with pytest.raises(ValueError, match="unsupported extension"):
    Taxonomy.from_file(path)


def test_save_load_roundtrip(tmp_path):
  tax = get_taxonomy("cifar100_t2")
  path = tmp_path / "t2.json"
  tax.save(path)
  loaded = Taxonomy.from_file(path, name="cifar100_t2")
  assert loaded == tax
  # Atomic save leaves no temp files behind.
  assert [p.name for p in tmp_path.iterdir()] == ["t2.json"]
  # Saving again overwrites in place.
  small = Taxonomy.from_groups("s", {"X": ["a"]})
  small.save(path)
  assert Taxonomy.from_file(path, name="s") == small


# ----------------------------------------------------------------- re-indexing


def test_align_reordered_dataset(small):
  dataset = ["d", "c", "b", "a"]
  aligned, index_map = small.align(dataset)
  assert aligned.fine_names == ("d", "c", "b", "a")
  assert aligned.coarse_names == small.coarse_names
  assert index_map.dtype == np.int32
  assert index_map.tolist() == [0, 1, 2, 3]
  # Each dataset label keeps its coarse parent after re-indexing.
  for ds_id, fine in enumerate(dataset):
    assert aligned.coarse_of(index_map[ds_id]) == small.coarse_of(small.fine_names.index(fine))


def test_align_dataset_with_extra_classes(small):
  aligned, index_map = small.align(["z", "b", "a", "y", "d", "c"])
  assert aligned.fine_names == ("b", "a", "d", "c")
  assert index_map.tolist() == [-1, 0, 1, -1, 2, 3]
  assert aligned.fine_to_coarse.tolist() == [0, 1, 0, 1]


def test_align_smaller_dataset_errors(small):
  with pytest.raises(ValueError, match="lacks: 'c', 'd'.*dataset classes are 'a', 'b'"):
    small.align(["a", "b"])


def test_subset_drops_empty_coarse(small):
  sub = small.subset(["a", "c"], name="sub")
  assert sub.fine_names == ("a", "c")
  assert sub.coarse_names == ("Y",)
  with pytest.raises(ValueError, match="'q'"):
    small.subset(["a", "q"])


# ------------------------------------------------------------------- built-ins

_SIZES = {
  "fmnist3": (10, 3),
  "fmnist_seasons": (10, 3),
  "fmnist10": (10, 10),
  "cifartoy_good": (8, 2),
  "cifartoy_bad": (8, 2),
  "cifar100": (100, 20),
  "cifar100_t1": (100, 20),
  "cifar100_t2": (100, 20),
  "cifar68": (68, 20),
  "digits_shapes": (10, 3),
  "cars196_8": (196, 8),
  "cub200_flat": (200, 1),
  "cub200_orders": (200, 13),
}


def test_builtin_sizes():
  assert set(BUILTIN_TAXONOMIES) == set(_SIZES)
  for name, (k, c) in _SIZES.items():
    tax = get_taxonomy(name)
    assert (tax.num_fine, tax.num_coarse) == (k, c), name
    assert tax.name == name


def test_fmnist10_makes_each_class_its_own_coarse_class():
  tax = get_taxonomy("fmnist10")
  assert tax.fine_names == FASHION_MNIST_CLASSES and tax.coarse_names == FASHION_MNIST_CLASSES
  np.testing.assert_array_equal(tax.fine_to_coarse, np.arange(10))


def test_class_lists():
  assert len(FASHION_MNIST_CLASSES) == 10 and FASHION_MNIST_CLASSES[9] == "Ankle boot"
  assert len(set(CIFAR100_CLASSES)) == 100
  assert list(CIFAR100_CLASSES) == sorted(CIFAR100_CLASSES)
  assert DIGITS_CLASSES == tuple("0123456789")
  assert len(CIFAR_SI_KEEP) == 100
  keep = cifar_si_keep()
  assert keep.shape == (100,) and np.all((keep > 0) & (keep <= 1))
  assert keep[0] == pytest.approx(0.57375399) and keep[-1] == pytest.approx(0.36106552)


def test_builtins_follow_dataset_order():
  for name, classes in [
    ("fmnist3", FASHION_MNIST_CLASSES),
    ("digits_shapes", DIGITS_CLASSES),
    ("cifar100_t1", CIFAR100_CLASSES),
    ("cifar100_t2", CIFAR100_CLASSES),
  ]:
    aligned, index_map = get_taxonomy(name, classes)
    assert index_map.tolist() == list(range(len(classes))), name
    assert aligned == get_taxonomy(name)


def test_fmnist3_groups():
  tax = get_taxonomy("fmnist3")
  assert tax.coarse_names == ("Tops", "Footwear", "Other")
  assert tax.fine_to_coarse.tolist() == [0, 2, 0, 2, 0, 1, 0, 1, 2, 1]


def test_cifar100_t1_superclasses():
  tax = get_taxonomy("cifar100_t1")
  assert tax.coarse_names[0] == "aquatic_mammals" and tax.coarse_names[19] == "vehicles_2"
  assert np.bincount(tax.fine_to_coarse).tolist() == [5] * 20
  # Known CIFAR-100 coarse labels: apple->4, aquarium_fish->1, worm->13, willow_tree->17.
  assert tax.coarse_of([0, 1, 99, 96]).tolist() == [4, 1, 13, 17]


def test_cifar100_t2_is_partition_of_all_100():
  tax = get_taxonomy("cifar100_t2")
  assert tax.fine_names == CIFAR100_CLASSES
  assert sorted(tax.fine_names) == sorted(CIFAR100_CLASSES)
  assert np.bincount(tax.fine_to_coarse, minlength=20).tolist() == [5] * 20
  members = [tax.fine_names[k] for c in range(20) for k in tax.children(c)]
  assert sorted(members) == sorted(CIFAR100_CLASSES)
  assert tax.coarse_names[13] == "large_animals"
  assert tax.fine_names[tax.children(13)[-1]] == "whale"


def test_cifar68_children_counts():
  tax = get_taxonomy("cifar68")
  counts = [len(tax.children(c)) for c in range(20)]
  assert counts == [2, 5, 4, 2, 2, 3, 3, 4, 3, 5, 4, 3, 5, 3, 3, 3, 4, 4, 4, 2]
  removed = {CIFAR100_CLASSES[i] for i in CIFAR68_REMOVED}
  assert len(removed) == 32 and not removed & set(tax.fine_names)
  # Kept classes re-indexed in increasing CIFAR-100 id order.
  ids = [CIFAR100_CLASSES.index(f) for f in tax.fine_names]
  assert ids == sorted(ids)
  _, index_map = get_taxonomy("cifar68", CIFAR100_CLASSES)
  assert (index_map == -1).sum() == 32 and index_map[0] == -1 and index_map[1] == 0


@pytest.mark.parametrize("name", ["cifartoy_good", "cifartoy_bad"])
def test_cifartoy_drops_deer_and_frog(name):
  aligned, index_map = get_taxonomy(name, CIFAR10_CLASSES)
  dropped = [CIFAR10_CLASSES[i] for i in np.flatnonzero(index_map == -1)]
  assert dropped == ["deer", "frog"]
  assert aligned.coarse_names == ("toy_a", "toy_b")
  assert sorted(index_map[index_map >= 0].tolist()) == list(range(8))


def test_cifartoy_bad_matches_official_ids():
  aligned, index_map = get_taxonomy("cifartoy_bad", CIFAR10_CLASSES)
  coarse = aligned.coarse_of(index_map[[0, 1, 5, 3, 8, 9, 2, 7]])
  assert coarse.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_get_taxonomy_unknown_name():
  with pytest.raises(ValueError, match="Unknown taxonomy 'cifar1000'.*cifar100_t2.*path"):
    get_taxonomy("cifar1000")


def test_get_taxonomy_from_file_and_align(tmp_path):
  path = tmp_path / "mine.csv"
  path.write_text("b,Y\na,X\n")
  tax = get_taxonomy(str(path))
  assert tax.name == "mine" and tax.fine_names == ("b", "a")
  aligned, index_map = get_taxonomy(str(path), ["a", "c", "b"])
  assert aligned.fine_names == ("a", "b")
  assert index_map.tolist() == [0, -1, 1]
