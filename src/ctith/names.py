"""Names the command-line parser needs, kept apart from the modules that use them so that
building the parser imports nothing heavy (every job builds it)."""

# pyradiomics' texture classes of the ITH local features (the paper's set: all of them).
FEATURE_CLASSES = ("firstorder", "glcm", "gldm", "glrlm", "glszm", "ngtdm")
