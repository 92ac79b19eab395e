"""The grain pipeline: seeded order, epochs, per-process slices, resumption, views, device prefetch, eval batches."""

import jax
import numpy as np
import pytest

from coarse2fine.config_base import base_config
from coarse2fine.data import load_dataset, pipeline
from coarse2fine.data.batch import Batch
from coarse2fine.engine import sharding


def _assert_batches_equal(x: Batch, y: Batch, message=""):
  for name, a, b in zip(Batch._fields, x, y):
    if a is None or b is None:
      assert a is None and b is None, f"{message} {name}"
    else:
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=f"{message} {name}")


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
    _assert_batches_equal(x, y)
  assert not all(np.array_equal(x.index, z.index) for x, z in zip(a, c))


def test_each_epoch_is_a_permutation_and_epochs_differ(image_data):
  config, data = image_data
  batches = _batches(data, config, 20)  # 2 epochs of 10 batches of 10
  epoch1 = np.concatenate([b.index for b in batches[:10]])
  epoch2 = np.concatenate([b.index for b in batches[10:]])
  assert sorted(epoch1) == list(range(100)) and sorted(epoch2) == list(range(100))
  assert not np.array_equal(epoch1, epoch2)
  # labels travel with their examples
  b = batches[0]
  np.testing.assert_array_equal(b.coarse, data.train.coarse[b.index])
  np.testing.assert_array_equal(b.fine, data.train.fine[b.index])
  np.testing.assert_array_equal(b.dataset, np.zeros(10))
  # Each example carries (global batch number, position) for its device draws.
  for number, batch in enumerate(batches):
    np.testing.assert_array_equal(batch.example, np.stack([np.full(10, number), np.arange(10)], 1))


def test_process_slices_are_disjoint(image_data):
  config, data = image_data
  seen = []
  for process in range(2):
    batches = _batches(data, config, 10, batch=10, process_index=process, process_count=2)
    assert all(len(b.index) == 5 for b in batches)
    assert all((b.example[:, 1] == process * 5 + np.arange(5)).all() for b in batches)  # global positions
    seen.append(set(np.concatenate([b.index for b in batches])))
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
    got = jax.tree.map(lambda *leaves: np.concatenate(leaves), *[part[step] for part in parts])
    _assert_batches_equal(got, want, f"step {step}")


def test_examples_draw_from_their_own_generators(image_data):
  config, data = image_data
  transform = pipeline.make_transform(data, config, ("strong",))
  key = lambda *rows: pipeline.ExampleStreams(np.array(rows))
  views = lambda indices, *rows: transform(indices, key(*rows), np.zeros((len(rows), 2), np.int32)).views[:, 0]
  batch = views(np.array([3, 3, 7]), [0, 1, 0], [0, 1, 1], [0, 1, 0])
  assert not np.array_equal(batch[0], batch[1])  # one image, two keys: two draws
  # An example's draws depend on its key alone, not on what comes before it in the batch.
  np.testing.assert_array_equal(views(np.array([7]), [0, 1, 0])[0], batch[2])
  np.testing.assert_array_equal(views(np.array([3]), [0, 1, 0])[0], batch[0])


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
    _assert_batches_equal(next(resumed), want)


def test_worker_processes_give_the_same_batches(image_data):
  config, data = image_data
  workers = config.copy_and_resolve_references()
  workers.num_workers = 2
  threads = config.copy_and_resolve_references()
  threads.num_threads = 3
  for x, y, z in zip(_batches(data, config, 3), _batches(data, workers, 3), _batches(data, threads, 3)):
    _assert_batches_equal(x, y)
    _assert_batches_equal(x, z)


def test_multi_view_batches(image_data):
  config, data = image_data
  (batch,) = _batches(data, config, 1, views=("weak", "strong", "strong"))
  assert batch.views.shape == (10, 3, 8, 8, 1) and batch.views.dtype == np.uint8  # host stage: uint8
  assert not np.array_equal(batch.views[:, 1], batch.views[:, 2])  # independent draws
  assert batch.neighbours is None


def test_device_stage_normalises_with_the_dataset_statistics(image_data):
  config, data = image_data
  (batch,) = _batches(data, config, 1, views=("none",))
  np.testing.assert_array_equal(batch.views[:, 0], data.train.inputs[batch.index])  # the stored images, as uint8
  augment = pipeline.make_device_augment(data, config, ("none",), seed=0)
  got = np.asarray(augment(jax.tree.map(np.asarray, batch)).views[:, 0])
  raw = data.train.inputs[batch.index].astype(np.float32) / 255.0
  np.testing.assert_allclose(got, (raw - data.mean) / data.std, rtol=1e-5, atol=1e-5)


def test_device_batches_arrive_sharded_and_resume_at_the_consumed_position(image_data):
  config, data = image_data
  mesh = sharding.make_mesh()
  make = lambda: iter(pipeline.device_batches(
      pipeline.train_dataset(data, config, views=("crop_flip",), global_batch_size=10, seed=5), mesh, prefetch=2))
  host = iter(pipeline.train_dataset(data, config, views=("crop_flip",), global_batch_size=10, seed=5))
  it = make()
  for step in range(5):
    got, want = next(it), next(host)
    assert isinstance(got.views, jax.Array) and got.views.dtype == np.uint8
    assert got.views.sharding.is_equivalent_to(sharding.batch_sharded(mesh), got.views.ndim)
    _assert_batches_equal(got, want, f"step {step}")
  state = it.get_state()  # the prefetcher has read ahead; its state is where the loop stands
  expected = [next(host) for _ in range(3)]
  resumed = make()
  resumed.set_state(state)
  for want in expected:
    _assert_batches_equal(next(resumed), want)
  with pytest.raises(ValueError, match="device_prefetch"):
    pipeline.device_batches(pipeline.train_dataset(data, config, views=("none",), global_batch_size=10, seed=0),
                            mesh, prefetch=-1)


def test_eval_batches_cover_the_split_in_order_as_stored(image_data):
  _, data = image_data
  batches = list(pipeline.eval_batches(data.test, 16))
  assert len(batches) == 3
  index = np.concatenate([b["index"][b["mask"]] for b in batches])
  np.testing.assert_array_equal(index, np.arange(37))
  assert batches[-1]["mask"].sum() == 37 - 32 and batches[-1]["inputs"].shape[0] == 16
  np.testing.assert_array_equal(batches[0]["inputs"], data.test.inputs[:16])  # uint8, normalised on the device


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
    assert b.neighbours.shape == (10, 4, data.train.inputs.shape[1])
    for i, index in enumerate(b.index):
      got = b.neighbours[i]
      # each drawn neighbour is one of the row's, as stored (normalised later, on the device)
      expected = {s: data.train.inputs[(index + s) % 100] for s in range(1, 7)}
      drawn = [next(s for s, x in expected.items() if np.allclose(x, g, atol=1e-6)) for g in got]
      assert len(set(drawn)) == 4
      offsets.update(drawn)
  assert offsets == set(range(1, 7))  # every column gets drawn sometimes
  again = _batches(data, config, 12, views=("none",), neighbours=sampling)
  np.testing.assert_array_equal(again[5].neighbours, batches[5].neighbours)  # seeded
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


def test_training_views_of_files_are_cut_from_the_whole_stored_image(tmp_path):
  """Evaluation sees the centre crop; RandomResizedCrop views see the whole file (as torchvision's do)."""
  from PIL import Image

  from coarse2fine.data.files.lazy_images import FolderReader, LazyImages
  from coarse2fine.data.splits import HierarchicalData, make_split
  from coarse2fine.data.taxonomy import Taxonomy

  stripes = np.zeros((32, 96, 3), np.uint8)  # red | green | blue thirds of a wide image
  for third, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
    stripes[:, 32 * third:32 * third + 32] = colour
  paths = []
  for i in range(12):
    paths.append(f"{i}.png".encode())
    Image.fromarray(stripes).save(tmp_path / f"{i}.png")
  images = LazyImages(FolderReader(str(tmp_path), np.array(paths)), num=12, size=16, resize=16)
  taxonomy = Taxonomy.from_groups("t", {"a": ["a0", "a1"], "b": ["b0", "b1"]})
  split = make_split(images, fine=np.arange(12) % 4, taxonomy=taxonomy, where="stripes")
  data = HierarchicalData("stripes", taxonomy, split, split, mean=np.zeros(3), std=np.ones(3))
  config = base_config().data
  config.augment.min_scale = 0.95
  config.augment.flip = False
  (batch,) = _batches(data, config, 1, views=("weak", "none"), batch=6)
  evaluation = images[batch.index]
  np.testing.assert_array_equal(batch.views[:, 1], evaluation)  # 'none' is the evaluation view
  assert (evaluation[:, :, 1:-1, 1] > 200).all()  # the centre square of the 32 x 96 image: green
  weak = batch.views[:, 0]
  assert weak.shape == (6, 16, 16, 3)
  assert (weak[:, :, 0, 0] > 200).all() and (weak[:, :, -1, 2] > 200).all()  # red at the left, blue at the right


@pytest.mark.parametrize("process_count", [1, 2])
def test_a_dataset_started_at_a_batch_continues_the_uninterrupted_one(image_data, process_count):
  """The data position of a resumed run is its step: starting at batch 13 (past an epoch end) gives
  batches 13, 14, ... of a dataset read from the start, in each process's part."""
  config, data = image_data
  make = lambda start, p: iter(pipeline.train_dataset(
      data, config, views=("crop_flip",), global_batch_size=10, seed=5, process_index=p,
      process_count=process_count, start_batch=start))
  for p in range(process_count):
    whole = make(0, p)
    expected = [next(whole) for _ in range(16)][13:]
    started = make(13, p)
    for want in expected:
      _assert_batches_equal(next(started), want)
  with pytest.raises(ValueError, match="start_batch"):
    make(-1, 0)
