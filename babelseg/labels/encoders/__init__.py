"""babelseg.labels.encoders"""
