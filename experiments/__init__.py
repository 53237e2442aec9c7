"""satnets.experiments: one small script per experiment, run as python -m experiments.<name>."""
