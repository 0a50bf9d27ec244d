"""Forewarn: streaming hardware-failure prediction."""
