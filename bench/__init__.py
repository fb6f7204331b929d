"""Benchmarks, each `python -m bench.<name>` printing a markdown table (results: docs/performance.md).

overhead (stage direct vs through Temporal), throughput (N jobs on one worker, worker RSS; its run is
load's), load (N jobs, audited for lost/duplicated/stuck), chunked_vs_single (transcription speed-up and
WER), resume_cost (kill -9 mid-transcription). worker_process: the worker subprocess they share.
"""
