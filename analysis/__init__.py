"""satnets.analysis: the paper's analyses (sections 5, 6 and 8); to come."""
