"""Lab: reader training, calibration fitting, evaluation, benchmarks, reader comparisons and reports.

May use: every run-time package (qa.chat and below); none of them may use it. Used by: qa.cli.
"""
