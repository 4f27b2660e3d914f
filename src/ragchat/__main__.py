"""`python -m ragchat ...`: the `ragchat` command, for environments without the console script on PATH."""

from ragchat.cli.main import main

main()
