"""HTTP API: one module per resource, assembled by ``create_app``."""

from atoll.api.app import AppContext, create_app
from atoll.api.context import ApiContext, CommandSender, IngestSubmitter

__all__ = ["ApiContext", "AppContext", "CommandSender", "IngestSubmitter", "create_app"]
