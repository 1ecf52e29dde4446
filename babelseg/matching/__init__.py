"""babelseg.matching"""
