"""The model store: a trained model as a verified BentoML artifact (``artifact``) and the
stage labels that say which version is candidate, production or previous (``stages``)."""
