"""registry_svc: backend configuration and the truth about health."""
