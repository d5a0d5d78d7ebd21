"""Optuna studies (cgankd tune)."""
