"""The evidence harness behind ``benchmarks/evidence.py``: each paper's ablation table measured
on a SynthWorld world, over seeds, with paired 95 % intervals and verdicts.

Modules: ``world`` (generate or reuse a world; dataset roles read from its ``datasets.yaml`` and
``relations.json``), ``budget`` (steps per paper and device), ``runs`` (train and score runs, in
this process or in parallel subprocesses, cached on disk), ``claims`` (a claim: two measures and
the paper's effect), ``stats`` (paired t-interval, verdict), ``report`` (JSON and Markdown),
``papers`` (the rows of each paper), ``cli`` (the command line).
"""
