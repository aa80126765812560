"""Promotion: the gate that compares a candidate with production, and the stage changes it
decides (promote, roll back). ``python -m operations.promotion`` is
its command line."""
