"""The command lines: `python -m coarse2fine.main` (train), `.evaluate`, `.plot` and `.embed`.

Each module here holds the flags and wiring of one command; the library calls it makes live
in `coarse2fine.engine` and `coarse2fine.figures`. The top-level `coarse2fine/main.py`,
`evaluate.py`, `plot.py` and `embed.py` only run these, so the documented `python -m` commands stay.
"""
