"""The clipper CLI from a checkout: `python starter.py --help` (installed: `clipper --help`). See clipper_app/cli/main.py."""

from clipper_app.cli.main import main

if __name__ == "__main__":
    main()
