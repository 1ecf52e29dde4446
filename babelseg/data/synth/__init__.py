"""babelseg.data.synth"""
