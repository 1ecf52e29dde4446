"""babelseg.models.heads"""
