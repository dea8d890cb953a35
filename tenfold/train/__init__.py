"""The trainer behind `tenfold train`: recipe → data → model → fit → evaluate → report.

Application code: the library never imports it.
"""
