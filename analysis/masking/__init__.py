"""Beyond the paper: is the robustness real? The gradient-masking audit (``audit``, after Carlini et
al. 2019), its attack suite run in batches (``suite``), the prediction of exactly-zero float32 input
gradients from a network's depths and margins (``saturation``), and the readout in long training
runs: silent examples, per-class margins, logits pinned by a misclassified training image
(``readout``)."""
