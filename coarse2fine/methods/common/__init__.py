"""What several methods share: network assembly, L2 normalisation, momentum updates,
neighbour mining and passes over the training split."""
