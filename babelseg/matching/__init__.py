"""babelseg.matching: Hungarian matching of mask proposals to targets, and DaTaSeg's MERGE."""
