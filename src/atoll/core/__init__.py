"""Domain types, errors and wire contracts. No I/O lives here."""
