"""The KPI engine's pure core: counters, windows, pseudonyms, enrichment and the KPI functions.

Everything here is a pure function of the readings it is given (no clock, no I/O, no state kept
between calls), so the live engine and ``kpi recompute`` compute the same values from the same
stored readings, whatever process received them and in whatever order.
"""
