"""Sweep review: from a fetched `SweepRecord` to a table, figures, parameter importance, verdicts
and the winning configuration. One concern per module, each importing only modules listed before
it: `fetch`, `results`, `formatting` (values as people read them), `importance`, `verdict`,
`findings` (what the review concludes), `figures` and `pages` (drawn and written), `report` (the
folder it writes) and `dashboard` (the same views on W&B).
"""
