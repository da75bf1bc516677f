"""Sweep review: from a fetched `SweepRecord` to a table, figures, parameter importance, verdicts
and the winning configuration. One concern per module: `fetch`, `results`, `importance`,
`verdict`, `figures`; `agent.review.report` puts them together.
"""
