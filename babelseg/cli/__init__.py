"""babelseg.cli"""
