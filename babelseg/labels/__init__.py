"""babelseg.labels"""
