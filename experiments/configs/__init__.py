"""Experiment configs: each module's ``get_config()`` returns the ``aejax.Config`` it runs."""
