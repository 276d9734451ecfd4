"""Shipping what the writer has written on to another system (Kafka), from the files.

The files are the buffer: a forwarder follows them as `tail -f` does (history/follower.py)
from a checkpoint in the log directory, so intake never waits for the other system.
"""
