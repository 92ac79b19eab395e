"""The supervised baselines: coarse, coarse_plus, fine, fine_plus."""
