"""babelseg.evaluation"""
