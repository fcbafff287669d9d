"""The training loop, schedules, checkpoints and loggers."""
