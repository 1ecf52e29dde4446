"""babelseg.losses"""
