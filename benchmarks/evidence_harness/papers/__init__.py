"""The rows of each paper: ``PAPERS[name](roles)`` returns its ``PaperTable`` for a world."""

from __future__ import annotations

from evidence_harness.papers import autounify, dataseg, lmseg, ms3, sentence

PAPERS = {
    "lmseg": lmseg.table,
    "dataseg": dataseg.table,
    "ms3": ms3.table,
    "autounify": autounify.table,
    "sentence": sentence.table,
}
