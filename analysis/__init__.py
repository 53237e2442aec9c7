"""satnets.analysis: the paper's analyses, one equation per function: weight and activation
statistics (section 5, ``stats``), representational dissimilarity (eq. 9, ``rdm``), the Fisher
metric pulled back to the input (section 6, ``fisher``), and the kurtosis mechanism of a linear
read-out (section 8, ``kurtosis``). Beyond the paper, apart: the gradient-masking audit
(``analysis.masking``) and the proofs of robust accuracy (``analysis.proofs``)."""
