"""The package version and the wire protocol version (no imports: read on every path)."""

VERSION = "0.1.0"
PROTOCOL_VERSION = 1
