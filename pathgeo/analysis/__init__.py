"""The analysis of the measured tables: aggregation, the claims of the papers, the zigzag findings, the
figures and the report. It runs without torch."""
