"""babelseg.inference"""
