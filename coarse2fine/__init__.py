"""coarse2fine: learning fine-grained structure from coarse labels, in JAX.

The Python API for a user's own arrays (`coarse2fine.api`):

  import coarse2fine as c2f
  model = c2f.fit(x, coarse, method="scgm_g", num_fine=20)
  z = model.embed(x)
"""

__all__ = ["fit", "load", "Model", "FewShotClassifier"]


def __getattr__(name: str):
  # Loaded on first use: `import coarse2fine.data...` stays light, and the command-line
  # modules do not pull in the whole library before they need it.
  if name in __all__:
    from coarse2fine import api
    return getattr(api, name)
  raise AttributeError(f"module 'coarse2fine' has no attribute {name!r}")
