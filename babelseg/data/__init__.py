"""babelseg.data"""
