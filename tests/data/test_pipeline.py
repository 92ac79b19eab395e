"""The grain pipeline: seeded order, epochs, per-process slices, resumption, views, eval batches."""


import numpy as np
import pytest

from coarse2fine.config_base import base_config
from coarse2fine.data import load_dataset, pipeline


@pytest.fixture(scope="module")
def image_data():
  config = base_config().data
  config.name = "synthetic"
  config.synthetic.kind = "images"
  config.synthetic.image_shape = (8, 8, 1)
  config.synthetic.num_train = 100
  config.synthetic.num_test = 37
  return config, load_dataset(config)


def _batches(data, config, n, views=("crop_flip",), seed=0, batch=10, **kwargs):
  it = iter(pipeline.train_dataset(data, config, views=views, global_batch_size=batch, seed=seed, **kwargs))
  return [next(it) for _ in range(n)]


def test_same_seed_same_batches_other_seed_other_order(image_data):
  config, data = image_data
  a, b, c = (_batches(data, config, 4, seed=s) for s in (0, 0, 1))
  for x, y in zip(a, b):
    for key in x:
      np.testing.assert_array_equal(x[key], y[key])
  assert not all(np.array_equal(x["index"], z["index"]) for x, z in zip(a, c))


def test_each_epoch_is_a_permutation_and_epochs_differ(image_data):
  config, data = image_data
  batches = _batches(data, config, 20)  # 2 epochs of 10 batches of 10
  epoch1 = np.concatenate([b["index"] for b in batches[:10]])
  epoch2 = np.concatenate([b["index"] for b in batches[10:]])
  assert sorted(epoch1) == list(range(100)) and sorted(epoch2) == list(range(100))
  assert not np.array_equal(epoch1, epoch2)
  # labels travel with their examples
  b = batches[0]
  np.testing.assert_array_equal(b["coarse"], data.train.coarse[b["index"]])
  np.testing.assert_array_equal(b["fine"], data.train.fine[b["index"]])


def test_process_slices_are_disjoint(image_data):
  config, data = image_data
  seen = []
  for process in range(2):
    batches = _batches(data, config, 10, batch=10, process_index=process, process_count=2)
    assert all(len(b["index"]) == 5 for b in batches)
    seen.append(set(np.concatenate([b["index"] for b in batches])))
  assert not seen[0] & seen[1]
  assert seen[0] | seen[1] == set(range(100))


@pytest.mark.parametrize("processes", [2, 5])
def test_processes_together_read_the_one_process_batches(image_data, processes):
  """Same examples, same augmentation draws: process parts concatenated are the 1-process global batch."""
  config, data = image_data
  whole = _batches(data, config, 12, views=("strong", "weak"), batch=10)  # crosses an epoch boundary
  parts = [_batches(data, config, 12, views=("strong", "weak"), batch=10, process_index=p, process_count=processes)
           for p in range(processes)]
  for step, want in enumerate(whole):
    for key in want:
      got = np.concatenate([part[step][key] for part in parts])
      np.testing.assert_array_equal(got, want[key], err_msg=f"step {step}, {key}")


def test_examples_draw_from_their_own_generators(image_data):
  config, data = image_data
  transform = pipeline.make_transform(data, config, ("strong",))
  key = lambda *rows: pipeline.ExampleStreams(np.array(rows))
  batch = transform(np.array([3, 3, 7]), key([0, 1, 0], [0, 1, 1], [0, 1, 0]))["inputs"]
  assert not np.array_equal(batch[0], batch[1])  # one image, two keys: two draws
  # An example's draws depend on its key alone, not on what comes before it in the batch.
  np.testing.assert_array_equal(transform(np.array([7]), key([0, 1, 0]))["inputs"][0], batch[2])
  np.testing.assert_array_equal(transform(np.array([3]), key([0, 1, 0]))["inputs"][0], batch[0])


def test_resuming_from_iterator_state(image_data):
  config, data = image_data
  make = lambda: iter(pipeline.train_dataset(data, config, views=("crop_flip",), global_batch_size=10, seed=5))
  it = make()
  for _ in range(13):
    next(it)
  state = it.get_state()
  expected = [next(it) for _ in range(3)]
  resumed = make()
  resumed.set_state(state)
  for want in expected:
    got = next(resumed)
    for key in want:
      np.testing.assert_array_equal(got[key], want[key])


def test_worker_processes_give_the_same_batches(image_data):
  config, data = image_data
  workers = config.copy_and_resolve_references()
  workers.num_workers = 2
  for x, y in zip(_batches(data, config, 3), _batches(data, workers, 3)):
    for key in x:
      np.testing.assert_array_equal(x[key], y[key])


def test_multi_view_batches(image_data):
  config, data = image_data
  (batch,) = _batches(data, config, 1, views=("weak", "strong", "strong"))
  assert batch["views"].shape == (10, 3, 8, 8, 1) and batch["views"].dtype == np.float32
  assert not np.allclose(batch["views"][:, 1], batch["views"][:, 2])  # independent draws


def test_normalisation_uses_dataset_statistics(image_data):
  config, data = image_data
  (batch,) = _batches(data, config, 1, views=("none",))
  raw = data.train.inputs[batch["index"]].astype(np.float32) / 255.0
  np.testing.assert_allclose(batch["inputs"], (raw - data.mean) / data.std, rtol=1e-5, atol=1e-5)


def test_eval_batches_cover_the_split_in_order(image_data):
  _, data = image_data
  batches = list(pipeline.eval_batches(data.test, data, 16))
  assert len(batches) == 3
  index = np.concatenate([b["index"][b["mask"]] for b in batches])
  np.testing.assert_array_equal(index, np.arange(37))
  assert batches[-1]["mask"].sum() == 37 - 32 and batches[-1]["inputs"].shape[0] == 16


def test_batch_larger_than_data_is_rejected(image_data):
  config, data = image_data
  with pytest.raises(ValueError, match="fewer than its batch"):
    pipeline.train_dataset(data, config, views=("none",), global_batch_size=128, seed=0)


def test_steps_per_epoch(image_data):
  _, data = image_data
  assert pipeline.steps_per_epoch(data, 30) == 3


def test_neighbours_are_drawn_from_each_examples_row_without_replacement():
  config = base_config().data
  config.name = "synthetic"  # vectors: no augmentation, so neighbour inputs can be compared exactly
  config.synthetic.num_train = 100
  data = load_dataset(config)
  table = np.stack([(np.arange(100) + s) % 100 for s in range(1, 7)], axis=1)  # 6 distinct neighbours each
  sampling = pipeline.NeighbourSampling(table.astype(np.int32), per_example=4)
  batches = _batches(data, config, 12, views=("none",), neighbours=sampling)
  offsets = set()
  for b in batches:
    assert b["neighbours"].shape == (10, 4, data.train.inputs.shape[1])
    for i, index in enumerate(b["index"]):
      got = b["neighbours"][i]
      # each drawn neighbour is one of the row's, normalised as the example itself is
      expected = {s: (data.train.inputs[(index + s) % 100] - data.mean) / data.std for s in range(1, 7)}
      drawn = [next(s for s, x in expected.items() if np.allclose(x, g, atol=1e-6)) for g in got]
      assert len(set(drawn)) == 4
      offsets.update(drawn)
  assert offsets == set(range(1, 7))  # every column gets drawn sometimes
  again = _batches(data, config, 12, views=("none",), neighbours=sampling)
  np.testing.assert_array_equal(again[5]["neighbours"], batches[5]["neighbours"])  # seeded
  with pytest.raises(ValueError, match="mine at least"):
    pipeline.NeighbourSampling(table.astype(np.int32), per_example=7)


def test_example_streams_are_keyed_and_independent():
  keys = np.array([[0, 1, 0], [0, 1, 1], [0, 2, 0], [1, 1, 0], [0, 1, 0]])
  streams = pipeline.ExampleStreams(keys)
  draws = [streams[i].random(4) for i in range(len(keys))]
  np.testing.assert_array_equal(draws[0], draws[4])  # the same key, the same stream, whatever came between
  assert len({tuple(d) for d in draws}) == 4  # position, batch and seed each change the stream
  tagged = pipeline.ExampleStreams(np.array([[0, 1, 0, 1]]))[0].random(4)
  assert not np.array_equal(tagged, draws[0])  # another pass's streams stay apart from training's
  with pytest.raises(ValueError, match="position < 2\\^24"):
    pipeline.ExampleStreams(np.array([[0, 1, 1 << 24]]))
