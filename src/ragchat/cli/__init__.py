"""The `ragchat` command line. Shared helpers for commands live in `ragchat.cli.common`."""
