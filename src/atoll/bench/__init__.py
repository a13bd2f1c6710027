"""Code that drives the platform to time it: ``atoll bench ingest`` (``ingest``), its load
generators (``loadgen``, run as separate processes) and store measurements (``store``) shared with
the scripts under ``bench/``. Product packages never import it."""
