"""The clipper CLI from a checkout: `python starter.py --help` (installed: `clipper --help`). See cli/main.py."""

from cli.main import main

if __name__ == "__main__":
    main()
