"""The ``tenfold`` command line (Typer): the commands, registered in one place.

Each command is a plain function in its own module (``tenfold/cli/<command>.py``); this
file only wires them into the app. Bad input (unknown recipe key, wrong type, missing file,
bad ``--set``) exits with status 2 and one message on stderr, no traceback
(``tenfold/cli/_errors.py`` lists the exit statuses).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import typer  # noqa: E402

from tenfold.cli import bench, deploy, lr_find, recipes, train  # noqa: E402

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="tenfold: ten training techniques for Keras 3, real, composable and measured.",
    pretty_exceptions_enable=False,
)
recipes_app = typer.Typer(no_args_is_help=True, help="List and show the bundled recipes.")

app.command("train")(train.train_command)
app.command("bench")(bench.bench_command)
app.command("lr-find")(lr_find.lr_find_command)
app.command("deploy")(deploy.deploy_command)
recipes_app.command("list")(recipes.list_command)
recipes_app.command("show")(recipes.show_command)
app.add_typer(recipes_app, name="recipes")


def main() -> None:
    """Entry point of the ``tenfold`` script and ``python -m tenfold``."""
    app(prog_name="tenfold")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
