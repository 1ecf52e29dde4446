"""babelseg: one segmentation model for many datasets whose label taxonomies disagree.

Labels become language: every class is a text, a text encoder turns it into a vector, and the
model predicts in that space, so any vocabulary can be asked for at inference time.
"""

__version__ = "0.1.0"
