"""babelseg.recipes"""
