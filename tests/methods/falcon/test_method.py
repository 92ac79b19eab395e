"""FALCON as a method: its step against numpy, the solve schedule, relation recovery, several devices."""

import functools
import json
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from coarse2fine.data import load_dataset
from coarse2fine.engine import hooks, loop, optim, runs, sharding
from coarse2fine.engine.runs import create_train_state
from coarse2fine.methods import build_method
from coarse2fine.methods.base import make_train_step
from coarse2fine.methods.falcon import method as falcon
from coarse2fine.methods.falcon import relation_solver
from tests import multi_device
from tests.methods import initial_state


@pytest.fixture
def falcon_config(tiny_config):
  config = tiny_config
  config.method = "falcon"
  config.data.views = ("none", "none")
  config.data.synthetic.num_train = 1024
  config.model.encoder_args.hidden_sizes = (64, 64)
  config.falcon.neighbours = 10
  config.falcon.neighbours_used = 3
  config.falcon.solve_every = 4
  config.falcon.soft_label_epochs = 2
  config.optimizer.weight_decay = 0.0
  return config


def _softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _numpy_loss(hp, logits, teacher_logits, nb_logits, relation, coarse, tau, warmup=False):
  """docs/methods/falcon.md#classifier-losses in vectorised float64 numpy.

  `warmup`: lambda2 L_cons + lambda3 L_reg only.
  """
  logits, teacher_logits, nb_logits = (np.asarray(a, np.float64) for a in (logits, teacher_logits, nb_logits))
  allowed = relation[:, coarse].T  # [B, K]
  lse = lambda a, axis=-1: np.log(np.sum(np.exp(a), axis=axis))
  log_p = logits - lse(logits)[:, None]
  p = np.exp(log_p)
  l_coarse = np.mean(lse(logits) - np.log(np.sum(np.exp(logits) * allowed, -1)))
  l_cons = -np.mean(np.log(np.einsum("bk,bmk->bm", p, _softmax(nb_logits))))
  q = np.exp(teacher_logits / hp.temperature) * allowed
  q /= q.sum(-1, keepdims=True)
  t = tau * q + (1 - tau) * np.eye(q.shape[1])[q.argmax(-1)]
  l_conf = -np.mean(np.sum(t * log_p, -1))
  pbar = p.mean(0)
  l_reg = math.log(p.shape[1]) + np.sum(pbar * np.log(pbar))
  if warmup:
    return hp.lambda_consistency * l_cons + hp.lambda_entropy * l_reg
  return hp.lambda_coarse * l_coarse + hp.lambda_consistency * (l_conf + l_cons) + hp.lambda_entropy * l_reg


def _setup(config):
  data = load_dataset(config.data)
  method = build_method(config, data)
  mesh = sharding.make_mesh()
  steps = len(data.train) // config.train.batch_size
  schedule = optim.make_schedule(config.optimizer, steps, 2 * steps)
  state = create_train_state(method, config, data.input_shape, mesh, schedule)
  return data, method, state, schedule


def _batch(data, method, rng, size=16):
  index = rng.permutation(len(data.train))[:size]
  table = method.neighbour_sampling().table
  nb = table[index][:, :method.hp.neighbours_used]
  x = data.train.inputs[index]
  return initial_state.batch(np.stack([x, x], 1), data.train.coarse[index], index=index,
                             neighbours=data.train.inputs[nb])


def test_step_loss_matches_numpy_and_accumulates_the_cost(falcon_config):
  data, method, state, schedule = _setup(falcon_config)
  rng = np.random.default_rng(0)
  # A teacher that differs from the online net, so teacher and online forwards are told apart.
  teacher = jax.tree.map(lambda a: a + 0.3 * jnp.asarray(rng.normal(size=a.shape), a.dtype), state.params)
  state = state.replace(extra={**state.extra, "teacher": teacher})
  relation = np.asarray(state.extra["relations"][0])
  # Every forward of the step runs in train mode: BatchNorm uses the statistics of its own batch.
  apply = lambda params, x: np.asarray(method.model().apply(
      {"params": params, "batch_stats": state.batch_stats}, x, train=True, mutable=["batch_stats"])[0]["logits"])
  batches = [_batch(data, method, rng) for _ in range(2)]
  step = jax.jit(make_train_step(method, schedule, lambda batch: batch))  # batches arrive augmented here
  want_cost = np.zeros(relation.shape)
  for batch in batches:
    loss, _ = method.loss(state.params, state, batch, jax.random.key(0))
    b, m = batch.neighbours.shape[:2]
    nb_logits = apply(state.extra["teacher"], batch.neighbours.reshape(b * m, -1)).reshape(b, m, -1)
    teacher_logits = apply(state.extra["teacher"], batch.views[:, 1])
    coarse = np.asarray(batch.coarse)
    want = _numpy_loss(method.hp, apply(state.params, batch.views[:, 0]), teacher_logits, nb_logits, relation,
                       coarse, tau=1.0)  # epoch 1: tau = 1
    assert float(loss) == pytest.approx(want, rel=1e-5)
    want_cost += _softmax(np.asarray(teacher_logits, np.float64)).T @ np.eye(data.num_coarse)[coarse]
    teacher_before = state.extra["teacher"]
    state, _ = step(state, batch)
    # The EMA update: d_1 = 2/11, d_2 = 3/12 (warm-up).
    d = (1 + int(state.extra["ema_updates"])) / (10 + int(state.extra["ema_updates"]))
    leaf = lambda t: np.asarray(jax.tree.leaves(t)[0], np.float64)
    np.testing.assert_allclose(leaf(state.extra["teacher"]), d * leaf(teacher_before) + (1 - d) * leaf(state.params),
                               rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(state.extra["cost"][0]), want_cost, rtol=1e-4, atol=1e-5)
  assert float(state.extra["cost_count"][0]) == 32

  # The hook solves S = cost / count and clears the accumulators.
  context = hooks.HookContext(config=falcon_config, data=data, mesh=sharding.make_mesh(), steps_per_epoch=64,
                              host_state={})
  solved = method.solve_relations(state, context)
  expected = relation_solver.solve_relation(want_cost / 32, falcon_config.falcon.beta).matrix
  np.testing.assert_array_equal(np.asarray(solved.extra["relations"][0]), expected.astype(bool))
  assert float(jnp.abs(solved.extra["cost"]).sum()) == 0 and float(solved.extra["cost_count"].sum()) == 0
  assert context.metrics["relation/beta"] == falcon_config.falcon.beta


def test_warmup_steps_train_the_neighbour_objective_only(falcon_config):
  falcon_config.falcon.warmup_steps = 20
  data, method, state, _ = _setup(falcon_config)
  relation = np.asarray(state.extra["relations"][0])
  batch = _batch(data, method, np.random.default_rng(1))
  apply = lambda x: np.asarray(method.model().apply(
      state.variables, x, train=True, mutable=["batch_stats"])[0]["logits"])  # teacher = online at init
  b, m = batch.neighbours.shape[:2]
  logits = apply(batch.views[:, 0])
  nb_logits = apply(batch.neighbours.reshape(b * m, -1)).reshape(b, m, -1)
  coarse = np.asarray(batch.coarse)
  spe = method.steps_per_epoch
  assert spe == 16
  # (step, warm-up?, tau): the warm-up is steps 0-19, across the epoch boundary; the tau schedule is
  # unchanged (epoch 2 of soft_label_epochs = 2: 0.5 (1 + cos(pi / 2)) = 0.5).
  for step, warmup, tau in ((0, True, 1.0), (19, True, 0.5), (20, False, 0.5), (spe - 1, True, 1.0)):
    loss, aux = method.loss(state.params, state.replace(step=jnp.asarray(step, jnp.int32)), batch,
                            jax.random.key(0))
    want = _numpy_loss(method.hp, logits, logits, nb_logits, relation, coarse, tau=tau, warmup=warmup)
    assert float(loss) == pytest.approx(want, rel=1e-5), (step, warmup)
    assert float(aux.metrics["train/warmup"]) == float(warmup)


def test_warmup_must_leave_steps_with_the_coarse_loss(falcon_config):
  falcon_config.falcon.warmup_steps = 2 * 16  # all of the 2 epochs of 16 steps
  with pytest.raises(ValueError, match="warmup_steps"):
    build_method(falcon_config, load_dataset(falcon_config.data))


def test_initial_relation_is_a_valid_seeded_solve():
  a = falcon.initial_relation(12, 4, beta=0.1, seed=3)
  assert a.shape == (12, 4) and np.all(a.sum(1) == 1) and np.all(a.sum(0) >= 1)
  np.testing.assert_array_equal(a, falcon.initial_relation(12, 4, beta=0.1, seed=3))
  assert not np.array_equal(a, falcon.initial_relation(12, 4, beta=0.1, seed=4))


def test_fixed_counts_hold_from_the_first_relation_through_the_solves(falcon_config):
  data = load_dataset(falcon_config.data)
  k, c = data.num_fine, data.num_coarse
  counts = [k - c + 1] + [1] * (c - 1)  # unlike the taxonomy's balanced counts
  assert counts != np.bincount(data.taxonomy.fine_to_coarse).tolist()
  falcon_config.falcon.fine_per_coarse = ",".join(map(str, counts))
  data, method, state, schedule = _setup(falcon_config)
  np.testing.assert_array_equal(np.asarray(state.extra["relations"][0]).sum(0), counts)
  step = jax.jit(make_train_step(method, schedule, lambda batch: batch))
  state, _ = step(state, _batch(data, method, np.random.default_rng(0)))
  context = hooks.HookContext(config=falcon_config, data=data, mesh=sharding.make_mesh(), steps_per_epoch=64,
                              host_state={})
  solved = np.asarray(method.solve_relations(state, context).extra["relations"][0])
  np.testing.assert_array_equal(solved.sum(0), counts)
  np.testing.assert_array_equal(solved.sum(1), np.ones(k))
  falcon_config.falcon.fine_per_coarse = "taxonomy"
  _, method, state, _ = _setup(falcon_config)
  np.testing.assert_array_equal(np.asarray(state.extra["relations"][0]).sum(0),
                                np.bincount(data.taxonomy.fine_to_coarse, minlength=c))


@pytest.mark.parametrize("setting", ["1,1", "x,y", "0,3,3,3"])
def test_bad_fixed_counts_are_named_before_training(falcon_config, setting):
  falcon_config.falcon.fine_per_coarse = setting
  with pytest.raises(ValueError, match=r"falcon.fine_per_coarse=.* give \d+ integers >= 1 summing to K"):
    build_method(falcon_config, load_dataset(falcon_config.data))


def test_neighbours_share_the_coarse_class(falcon_config):
  data, method, _, _ = _setup(falcon_config)
  table = method.neighbour_sampling().table
  assert table.shape == (len(data.train), 10)
  assert np.all(data.train.coarse[table] == data.train.coarse[:, None])
  assert not np.any(table == np.arange(len(data.train))[:, None])


def test_falcon_discovers_the_planted_fine_classes_and_their_parents(falcon_config, tmp_path, capsys):
  """3 coarse x 3 planted fine classes: the classifier finds them and M is the true relation."""
  config = falcon_config
  config.train.num_epochs = 6
  config.train.batch_size = 64
  config.train.log_every_steps = 4
  config.optimizer.lr = 0.05
  config.falcon.lambda_entropy = 2.0
  config.eval.protocols = ("classification", "clusters")
  metrics = loop.train_and_evaluate(config, str(tmp_path))["metrics"]
  assert metrics["discovery/clusters_relation_acc"] == 100.0 and metrics["discovery/ged"] == 0
  assert metrics["discovery/clusters_acc"] >= 90.0
  # read within each example's coarse class (the relation is exact): at least as good as the plain argmax here
  assert {"discovery/clusters_within_acc", "discovery/clusters_within_nmi"} <= set(metrics)
  assert metrics["discovery/clusters_within_acc"] >= 90.0
  lines = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  solves = [l["step"] for l in lines if "relation/objective" in l]
  # 16 steps per epoch, a solve after in-epoch steps 4, 8 and 12: completed steps 5, 9, 13, 21, ...
  assert solves == [16 * e + s for e in range(6) for s in (5, 9, 13)]
  betas = [l["relation/beta"] for l in lines if "relation/beta" in l]
  assert betas[:6] == [0.1] * 6 and set(betas[6:]) == {0.0}  # beta = 0 after soft_label_epochs = 2
  # The terminal: a line for each solve that changed parents, and for the first solve of each epoch.
  changed = {l["step"]: l["relation/changed_rows"] for l in lines if "relation/changed_rows" in l}
  epoch = {s: (s - 1) // 16 for s in solves}
  expected = [s for i, s in enumerate(solves) if changed[s] > 0 or i == 0 or epoch[solves[i - 1]] != epoch[s]]
  shown = [int(m) for m in re.findall(r"FALCON relation solve after step (\d+) ", capsys.readouterr().out)]
  assert shown == expected and len(shown) < len(solves), (shown, changed)


@pytest.mark.slow  # 10-20 s of training or subprocesses: CI's second step
def test_two_taxonomies_on_two_halves_recover_both_relations(falcon_config, tmp_path):
  """Half of train labelled 3 x 3 by c, the other half by j: one classifier, two inferred M."""
  from coarse2fine.engine.checkpointing import Checkpointer
  config = falcon_config
  path = tmp_path / "by_j.json"
  path.write_text(json.dumps({f"j{j}": [f"coarse{c}/fine{j}" for c in range(3)] for j in range(3)}))
  config.data.extra_taxonomies = (str(path),)
  config.data.synthetic.num_train = 2048
  config.train.num_epochs = 6
  config.train.batch_size = 64
  config.optimizer.lr = 0.05
  config.eval.protocols = ("clusters",)
  metrics = loop.train_and_evaluate(config, str(tmp_path / "run"))["metrics"]
  assert metrics["discovery/clusters_acc"] >= 90.0 and metrics["discovery/clusters_relation_acc"] == 100.0
  assert metrics["discovery/clusters_tax1_relation_acc"] == 100.0  # the evaluator scores M_1 too
  manager = Checkpointer(str(tmp_path / "run"), config)
  saved = manager.read_state()
  manager.close()
  relations = saved["extra"]["relations"]  # [2, K, 3]
  # Each discovered class k stands for the fine class f(k) = (c, j) most of its members have;
  # M_0 must put k under c and M_1 under j.
  data = load_dataset(config.data)
  method = build_method(config, data)
  variables = {"params": saved["params"], "batch_stats": saved["batch_stats"]}
  logits = method.model().apply(variables, jnp.asarray((data.train.inputs - data.mean) / data.std), train=False)
  pred = np.asarray(logits["logits"]).argmax(1)
  fine_of_cluster = {k: np.bincount(data.train.fine[pred == k]).argmax() for k in np.unique(pred)}
  assert len(set(fine_of_cluster.values())) == 9
  for k, f in fine_of_cluster.items():
    assert relations[0, k, f // 3] and relations[1, k, f % 3], (k, f)


MULTI_DEVICE_SCRIPT = multi_device.SYNTHETIC_IMAGES_CONFIG + r"""
config.method = "falcon"
config.falcon.neighbours = 8
config.falcon.neighbours_used = 2
config.falcon.solve_every = 1
config.eval.protocols = ("classification", "clusters")
""" + multi_device.TRAIN_AND_DUMP_STATE


@pytest.mark.slow
def test_eight_devices_match_one_device(tmp_path):
  one, eight = multi_device.states_on_one_and_eight(MULTI_DEVICE_SCRIPT, tmp_path)
  assert any("relations" in name for name in one) and any("teacher" in name for name in one)
  multi_device.assert_states_match(one, eight, exact=lambda name: "relations" in name or "ema_updates" in name)


def test_neighbours_from_another_runs_checkpoint(falcon_config, tmp_path):
  """`checkpoint:<workdir>`: the other run's eval-mode features on this training split, mined within coarse."""
  from coarse2fine.engine.checkpointing import Checkpointer
  source = falcon_config.copy_and_resolve_references()
  source.method = "coarse"
  source.data.views = ("none",)
  source.train.num_epochs = 1
  source.eval.protocols = ("classification",)
  loop.train_and_evaluate(source, str(tmp_path / "coarse"))
  falcon_config.falcon.neighbour_features = f"checkpoint:{tmp_path / 'coarse'}"
  data, method, _, _ = _setup(falcon_config)
  table = method.neighbour_sampling(
      functools.partial(runs.features_from_checkpoint, data=data, batch_size=falcon_config.eval.batch_size)).table

  manager = Checkpointer(str(tmp_path / "coarse"), source)
  saved = manager.read_state()
  manager.close()
  coarse_method = build_method(source, data)
  x = (data.train.inputs - data.mean) / data.std
  features = np.asarray(coarse_method.model().apply({"params": saved["params"], "batch_stats": saved["batch_stats"]},
                                                    jnp.asarray(x, jnp.float32), train=False)["features"], np.float64)
  features /= np.linalg.norm(features, axis=1, keepdims=True)
  sims = features @ features.T
  same = data.train.coarse[:, None] == data.train.coarse[None, :]
  sims = np.where(same & ~np.eye(len(x), dtype=bool), sims, -np.inf)
  want = np.argsort(-sims, axis=1, kind="stable")[:, :10]
  # float32 on the device vs float64 here: near-ties may swap; nearly all rows must agree exactly.
  assert np.mean(np.all(np.sort(table, 1) == np.sort(want, 1), axis=1)) >= 0.97


def test_bad_neighbour_source_is_named(falcon_config):
  falcon_config.falcon.neighbour_features = "features.txt"
  data, method, _, _ = _setup_without_state(falcon_config)
  with pytest.raises(ValueError, match="checkpoint:<workdir>"):
    method.neighbour_sampling()


def _setup_without_state(config):
  data = load_dataset(config.data)
  return data, build_method(config, data), None, None


def test_too_many_neighbours_for_the_smallest_coarse_class_names_the_field(falcon_config, tmp_path):
  smallest = int(np.bincount(load_dataset(falcon_config.data).train.coarse).min())  # counted independently
  falcon_config.falcon.neighbours = smallest  # one more than the smallest class can give (itself excluded)
  with pytest.raises(ValueError, match=rf"k={smallest} neighbours .*Lower falcon.neighbours \(at most {smallest - 1}"):
    loop.train_and_evaluate(falcon_config, str(tmp_path / "run"))
  assert not (tmp_path / "run" / "config.json").exists()


def test_a_solve_period_of_an_epoch_or_more_is_refused_before_training(falcon_config, tmp_path):
  """FALCON solves after step indices solve_every, 2 solve_every, ... of each epoch: none when it is >= an epoch."""
  falcon_config.falcon.solve_every = len(load_dataset(falcon_config.data).train) // falcon_config.train.batch_size
  with pytest.raises(ValueError, match="'falcon_relation' would never run.*change falcon.solve_every"):
    loop.train_and_evaluate(falcon_config, str(tmp_path / "run"))
  assert not (tmp_path / "run" / "config.json").exists()
