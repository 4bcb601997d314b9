"""qlf: Quiet Feature Learning in Algorithmic Tasks, reproduced."""
__version__ = "0.1.0"
