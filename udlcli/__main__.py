"""Entry point for `python -m udlcli`."""

from udlcli.cli.app import main

if __name__ == "__main__":
    main()
