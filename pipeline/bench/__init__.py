"""Benchmarks: transform micro-benchmarks, training/inference speed and memory, reconstruction quality."""
