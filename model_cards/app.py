"""A Hugging Face Space for a beyondgloss checkpoint: the app of `beyondgloss serve`, on the Space's address.

To make one: create a Space with the Gradio SDK, add this file as `app.py` and a `requirements.txt` with the line
`beyondgloss[app]` (or `beyondgloss[app] @ git+https://...` for an unreleased version), and set the Space variable
`BEYONDGLOSS_MODEL` to the checkpoint's Hub id (e.g. `your-name/phoenix14t-beyondgloss`). Clips in the checkpoint's
`examples/` folder appear as examples. Locally: `BEYONDGLOSS_MODEL=runs/demo/model python model_cards/app.py`.
"""

import os
import sys

from beyondgloss.cli import main

if __name__ == "__main__":
    model = os.environ.get("BEYONDGLOSS_MODEL")
    if not model:
        sys.exit("app.py: set BEYONDGLOSS_MODEL to the checkpoint to serve (a Hub model id or a local folder), e.g. "
                 "in the Space's settings under Variables")
    # A Space is reached through its proxy only, which names the visitor in X-Forwarded-For: trusting it gives each
    # visitor their own --max_requests_per_minute (else all of them would share the proxy's). A visitor can forge the
    # header to dodge that one limit; the server's other bounds (queue, uploads at once, upload disk) are global.
    os.environ.setdefault("FORWARDED_ALLOW_IPS", "*")
    # Spaces route their address to port 7860 on every interface and name both in these variables.
    host = os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0")
    port = os.environ.get("GRADIO_SERVER_PORT", "7860")
    sys.exit(main(["serve", "--model", model, "--host", host, "--port", port]))
