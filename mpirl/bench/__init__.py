"""Benchmarks of mpirl (``mpirl bench ...``)."""
