"""The engine: what runs any method, in any number of devices and processes.

  runs            a run from its config (data, method, fresh sharded state); a finished run's config and state
  loop            `train_and_evaluate`: steps, host hooks, logs, checkpoints, evaluation, results
  train_state     the pure-functional state pytree
  sharding        the device mesh (one `data` axis) and the batch and state shardings
  optim           optimizers and learning-rate schedules
  hooks           host-side hooks that methods run between jitted steps
  checkpointing   orbax checkpoints of the state, the data position and the hooks' host state; the
                  newest intact one restored
  checkpoint_digests  a digest of every saved array, checked at restore
  workdir_lock    one run per workdir
  metrics_writer  metrics.jsonl, TensorBoard and the progress line
  distributed     joining a multi-process run
  random_streams  named random streams of the config's seed
  reporting       atomic result files and metric tables

Nothing here names a method; `loop` and `runs` reach them through `coarse2fine.methods`.
"""
