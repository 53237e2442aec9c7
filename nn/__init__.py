"""satnets.nn: layers with explicit forward and backward, models, training, data, checkpoints."""
