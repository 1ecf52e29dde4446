"""The learned unified taxonomy of ``autounify`` (AutoUniSeg.txt): the label graph network, the
boolean dataset-label mappings by unbalanced optimal transport, the initial number of unified
classes from cross-dataset validation, and the taxonomy export and scoring."""
