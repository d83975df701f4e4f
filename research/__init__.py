"""Treadmill: test claims about Bitcoin's perpetual-futures liquidation treadmill with data."""
__version__ = "0.1.0"
