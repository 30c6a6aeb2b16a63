"""Reproductions of published autoencoder results, one command each (see experiments/README.md)."""
