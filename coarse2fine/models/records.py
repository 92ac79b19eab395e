"""Dual-Channel Combiner Network (DCCN) for records: static features plus a time series.

The SCGM paper's encoder for the dialysis case study (its Appendix C.3, after Che et
al., 2016): an MLP channel over the static features (28 in the paper), an LSTM channel
over the time series (40 features per session, windows of w = 5 sessions), and a
combining MLP over the concatenation of both channels' outputs.

The input pipeline hands every model one flat vector per example, so a record arrives
as `x: [B, S + T*F]`: the S static features first, then the series time-major
(`series[t, f]` at position `S + t*F + f`). `split_records` undoes this layout; the
data side builds it with `coarse2fine.data.datasets.records.flatten_records`.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from coarse2fine.models.convnet import batch_norm

POOLINGS = ("last", "mean")


def split_records(x, static_dim: int, series_features: int):
  """Splits flat records into their two channels (numpy or jax arrays).

  x: [B, S + T*F] -> static [B, S], series [B, T, F], with S = `static_dim`,
  F = `series_features` and T inferred from the width.
  """
  if static_dim < 1 or series_features < 1:
    raise ValueError(f"static_dim and series_features must be at least 1, got {static_dim} and {series_features}.")
  x = x.reshape((x.shape[0], -1))
  width = x.shape[1]
  steps, rest = divmod(width - static_dim, series_features)
  if steps < 1 or rest:
    raise ValueError(
        f"Records of width {width} do not fit static_dim={static_dim} plus T x series_features="
        f"{series_features} (need width = S + T*F with T >= 1). Set model.encoder_args.static_dim and "
        f"series_features to the data's sizes (S static features, F features per time step).")
  return x[:, :static_dim], x[:, static_dim:].reshape((x.shape[0], steps, series_features))


class DCCN(nn.Module):
  """Dual-channel encoder: static MLP, series LSTM, combining MLP.

  Static channel: Dense - (BN) - ReLU per width of `static_hidden`.
  Temporal channel: an LSTM (`nn.OptimizedLSTMCell`, `lstm_size` units) run over the
  T steps; `pooling="last"` (default) keeps the hidden state after the last step, the
  usual summary of a sequence and one that depends on the order of the steps;
  `"mean"` averages the hidden states over time.
  Combiner: Dense - (BN) - ReLU per width of `combiner_hidden` on the concatenation.
  An empty `static_hidden` feeds the raw static features to the combiner. BN
  statistics live in `batch_stats`; the LSTM has none. Under a bfloat16 `dtype` the
  LSTM's carry stays float32 (Flax starts it in the parameter dtype), which keeps the
  recurrence in full precision.

  x: [B, S + T*F] float (see `split_records`) -> [B, combiner_hidden[-1]] float32.
  """

  static_dim: int = 28  # S; the paper's case has 28 static features
  series_features: int = 40  # F; the paper's case has 40 temporal features
  static_hidden: Sequence[int] = (64,)
  lstm_size: int = 64
  combiner_hidden: Sequence[int] = (128,)
  pooling: str = "last"
  use_bn: bool = True
  dtype: Any = jnp.float32

  @property
  def features_dim(self) -> int:
    if not self.combiner_hidden:
      raise ValueError("DCCN needs at least one combiner_hidden width (it sets the output size D).")
    return int(self.combiner_hidden[-1])

  def _dense_stack(self, x: jnp.ndarray, widths: Sequence[int], train: bool, prefix: str) -> jnp.ndarray:
    for i, width in enumerate(widths):
      x = nn.Dense(width, use_bias=not self.use_bn, dtype=self.dtype, name=f"{prefix}_dense{i}")(x)
      if self.use_bn:
        x = batch_norm(train, self.dtype, name=f"{prefix}_bn{i}")(x)
      x = nn.relu(x)
    return x

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    if self.pooling not in POOLINGS:
      raise ValueError(f"Unknown DCCN pooling {self.pooling!r}; choose one of {list(POOLINGS)}.")
    if not self.combiner_hidden:
      raise ValueError("DCCN needs at least one combiner_hidden width (it sets the output size D).")
    static, series = split_records(jnp.asarray(x, self.dtype), self.static_dim, self.series_features)
    static = self._dense_stack(static, self.static_hidden, train, "static")
    cell = nn.OptimizedLSTMCell(self.lstm_size, dtype=self.dtype, name="lstm")
    hidden = nn.RNN(cell)(series)  # [B, T, lstm_size]
    temporal = hidden[:, -1] if self.pooling == "last" else hidden.mean(axis=1)
    combined = jnp.concatenate([static, temporal.astype(self.dtype)], axis=-1)
    return self._dense_stack(combined, self.combiner_hidden, train, "combiner").astype(jnp.float32)
