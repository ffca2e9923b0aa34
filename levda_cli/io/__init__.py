"""File formats: observations, the truth/trajectory store, the analysis store."""
