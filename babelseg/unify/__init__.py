"""babelseg.unify"""
