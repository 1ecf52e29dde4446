"""babelseg.engine"""
