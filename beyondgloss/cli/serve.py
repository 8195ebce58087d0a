"""`beyondgloss serve --model <folder or hub id> [--host 127.0.0.1 --port 7860]`: the web app, until Ctrl-C.

The app itself is `beyondgloss.app` ([`build_app`], [`launch`]); this module only reads the command line.
"""

from pathlib import Path

from ._arguments import parse_arguments
from ._common import CommandError, run_command

__all__ = ["serve"]


def _serve(argv: list) -> int:
    from ..app import ServeArguments, build_app, load_analyser, require_gradio, start

    (arguments,) = parse_arguments(argv, (ServeArguments,), command="serve", description=ServeArguments.__doc__)
    try:
        require_gradio()
    except ImportError as error:
        raise CommandError(str(error)) from error
    looks_local = arguments.model.startswith(("/", ".", "~")) or arguments.model.count("/") > 1
    if looks_local and not Path(arguments.model).expanduser().is_dir():
        raise CommandError(f"--model {arguments.model}: no such folder; give a saved checkpoint folder or a Hub "
                           "model id such as your-name/phoenix14t-beyondgloss")
    try:
        analyser = load_analyser(arguments)
    except (OSError, ValueError) as error:  # no such folder or Hub id, not a beyondgloss checkpoint
        raise CommandError(f"cannot load {arguments.model}: {error}") from error
    try:
        start(build_app(analyser), arguments, block=True)
    except OSError as error:  # the port is taken, the host is not this machine's
        raise CommandError(f"cannot listen on {arguments.host}:{arguments.port}: {error}; pass another --port, or "
                           "--host with an address of this machine") from error
    return 0


def serve(argv: list) -> int:
    """`beyondgloss serve`: serves the app of a checkpoint until interrupted (exit codes: `beyondgloss.cli`)."""
    return run_command("serve", _serve, argv)
