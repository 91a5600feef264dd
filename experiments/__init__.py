"""Experiment drivers: ``python -m experiments.<dataset>`` runs the whole comparison (see README.md)."""
