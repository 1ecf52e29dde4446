"""babelseg.data.readers"""
