"""Allow ``python -m login_audit``."""

from login_audit.cli import main

if __name__ == "__main__":
    main()
