"""``python -m tenfold`` is the ``tenfold`` command."""

from tenfold.cli.app import main

if __name__ == "__main__":
    main()
