"""Figures from analysis runs and studies."""
