"""Training: the order history (``synthetic_orders``, split by ``dataset``), fitting and
calibration (``fit``), the model card, and registration of the result (``release``).
The serving process never imports this package."""
