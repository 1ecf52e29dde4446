"""babelseg.models"""
