"""Demo stories told against a running node through the SDK (``sharechain demo ...``)."""
