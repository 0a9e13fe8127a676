"""The SDK's version: always the hub's (Sources/Server/Build.swift), so SDK 0.10.x goes with hub 0.10.x."""

__version__ = "0.10.0"
