"""mpirl: MPI-native distributed reinforcement learning."""
__version__ = "0.1.0"
