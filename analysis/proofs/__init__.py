"""Beyond the paper: robust accuracy proved, not attacked. Interval bound propagation (``ibp``),
linear relaxation (``crown`` for MLPs, ``crown_cnn`` through convolutions and max-pool), its
lower slopes optimised per example (``alpha_crown``, ReLU MLPs) and exact mixed-integer
verification of ReLU MLPs (``milp``), each sound in float32."""
