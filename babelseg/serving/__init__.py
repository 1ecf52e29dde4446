"""babelseg.serving: the ``babelseg serve`` web page and the JSON API behind it.

Layering: ``cli > serving > evaluation/inference > ...``; nothing below imports from here.
"""
