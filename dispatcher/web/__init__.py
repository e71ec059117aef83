"""The aiohttp application: HTTP API, gateway endpoints, health and (later) the console."""
