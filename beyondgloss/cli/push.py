"""`beyondgloss push <folder> <repo_id>`: uploads a saved checkpoint folder to the Hub (`beyondgloss.hub.push_folder`).

Exit codes: `beyondgloss.cli`; a folder that is not a complete checkpoint, a folder a training run is still writing
(`beyondgloss.cli.folder_lock`), or a Hub that refuses or cannot be reached, is one line naming the folder or
repository.
"""

import logging
from pathlib import Path

from ._common import CommandError, accept_dashed_spellings, command_parser, run_command
from .folder_lock import folder_in_use

__all__ = ["push"]

logger = logging.getLogger(__name__)

_DESCRIPTION = (
    "Upload a beyondgloss checkpoint folder (the output folder of a beyondgloss training command or of "
    "Trainer.save_model, or a folder where model.save_pretrained and processor.save_pretrained, or save_for_hub, "
    "wrote) to a Hub model repository. The folder is checked first: the message names anything missing. "
    "Intermediate checkpoints, logs and pickled training state stay behind."
)


def push(argv: list) -> int:
    """`beyondgloss push <folder> <repo_id> [--private] [--revision B] [--commit_message M] [--create_pr]`."""
    return run_command("push", _push, argv)


def _parser():
    parser = command_parser("push", _DESCRIPTION)
    parser.add_argument("folder", type=Path, help="the checkpoint folder")
    parser.add_argument("repo_id", help="the Hub repository, e.g. your-name/phoenix14t-beyondgloss")
    parser.add_argument("--private", action="store_true", default=None, help="create the repository as private")
    parser.add_argument("--revision", help="branch to push to")
    parser.add_argument("--commit_message", help="the commit message")
    parser.add_argument("--create_pr", action="store_true", help="open a pull request instead of committing")
    parser.add_argument("--token", help="Hub token (default: HF_TOKEN or the `hf auth login` token)")
    return accept_dashed_spellings(parser)


def _push(argv: list) -> int:
    from ..hub import NotACheckpointError, push_folder
    from ..utils.logging_utils import setup_logging

    args = _parser().parse_args(argv)
    setup_logging()
    holder = folder_in_use(args.folder)
    if holder:
        raise CommandError(f"{args.folder} is being written by a beyondgloss run ({holder}): its final files may be "
                           "replaced while they upload; push it once the run has ended")
    try:
        commit = push_folder(args.folder, args.repo_id, token=args.token, private=args.private,
                             revision=args.revision, commit_message=args.commit_message, create_pr=args.create_pr)
    except NotACheckpointError as error:
        raise CommandError(str(error)) from error
    except OSError as error:  # huggingface_hub's HTTP and offline errors are OSErrors
        raise CommandError(f"could not push {args.folder} to {args.repo_id}: {error}; check the repository id, "
                           "your token (--token or `hf auth login`) and the network") from error
    logger.info("Pushed %s to %s", args.folder, commit.commit_url)
    return 0
