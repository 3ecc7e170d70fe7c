"""User-facing errors: the CLI prints their message on one line and exits with code 2."""


class UserError(Exception):
    """Bad input from the user (config, file, flag). Printed without a traceback, exit code 2."""


class SimulationError(RuntimeError):
    """A simulation that cannot continue (blow-up, melting where forbidden, no convergence)."""
