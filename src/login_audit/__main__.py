"""``python -m login_audit`` and the ``login-audit`` console script.

Interrupts are handled before the command line is imported: a Ctrl-C in the first tenth of
a second is reported as every other one ("interrupted", 130), not as a traceback.
"""

from login_audit import interrupts


def main() -> None:
    """Run the command line with Ctrl-C and SIGTERM handled from the start."""
    # cli.main delivers what came while it loaded.
    with interrupts.handled(hold=True, process=True):
        from login_audit.cli import main as run

        run()


if __name__ == "__main__":
    main()
