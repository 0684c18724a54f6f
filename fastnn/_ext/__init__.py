"""Compiled kernels (built from csrc/). Import them through fastnn.kernels, which validates arguments."""
