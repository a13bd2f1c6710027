"""The edge agent (``atoll edge``): connectors read machines, a durable buffer keeps every
reading, a forwarder sends them to a platform as a gateway device with child devices.

The contract between the three parts is ``atoll.edge.port``; the wire contract between the
agent and the platform is the gateway section of docs/DEVICES.md (topics in
``atoll.core.topics``).
"""
