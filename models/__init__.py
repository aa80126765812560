"""delivery-eta core: data generation, features, model, intervals, feature store and serving logic.

Everything here runs and is tested without a server; ``service.py`` only adapts HTTP to it.
"""
