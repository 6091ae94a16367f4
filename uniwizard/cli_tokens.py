"""``uniwizard token new``: a fresh token, shown once, and its entry for the tokens file.

    uniwizard token new evennia --scopes think,route [--daily-usd 2] [--monthly-usd 40]
                                [--file tokens.yaml] [--json]

The token is printed once and kept nowhere; the tokens file gets only its hash. With ``--file``
the entry is added to that file (made if missing, readable by its owner only; the result must
validate or nothing is written), and running services pick it up within a second.
"""

from __future__ import annotations

import argparse

from uniwizard.cli_common import CliError, _print_json
from uniwizard.config_types import Budget
from uniwizard.tokens import (
    SCOPE_NAMES,
    append_entry,
    check_name,
    entry_yaml,
    hash_token,
    new_token,
    parse_scopes,
)
from uniwizard.yamlcheck import ConfigError


def cmd_token_new(args: argparse.Namespace) -> int:
    try:
        name = check_name(args.name)
        scopes = parse_scopes([s for s in args.scopes.split(",") if s.strip()])
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.daily_usd < 0 or args.monthly_usd < 0:
        raise CliError("--daily-usd and --monthly-usd must not be negative")
    budget = Budget(daily_usd=args.daily_usd, monthly_usd=args.monthly_usd)
    token = new_token()
    entry = entry_yaml(token, name, scopes, budget if budget.capped else None)
    if args.file:
        try:
            append_entry(args.file, entry)
        except (ConfigError, ValueError, OSError) as exc:
            raise CliError(f"--file {args.file}: {exc}") from None
    if args.json:
        _print_json(
            {
                "name": name,
                "token": token,
                "hash": hash_token(token),
                "scopes": sorted(scopes),
                "entry": entry,
                "file": args.file or None,
            }
        )
        return 0
    print(f"token for {name} (shown once, kept nowhere): {token}")
    if args.file:
        print(f"added to {args.file}; running services use it within a second")
    else:
        print("its entry, to go under 'tokens:' in the UNIWIZARD_TOKENS_FILE:")
        print(entry, end="")
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = sub.add_parser("token", help="make named tokens with scopes (UNIWIZARD_TOKENS_FILE)")
    tsub = token.add_subparsers(dest="token_command", required=True)
    new = tsub.add_parser("new", help="a fresh token, shown once, and its tokens-file entry")
    new.add_argument("name", help="what the ledger, the spans and `usage --by caller` show")
    new.add_argument(
        "--scopes",
        required=True,
        help=f"comma-separated, from: {', '.join(SCOPE_NAMES)} (e.g. think,route)",
    )
    new.add_argument("--daily-usd", type=float, default=0.0, help="a daily budget (UTC days)")
    new.add_argument("--monthly-usd", type=float, default=0.0, help="a monthly budget")
    new.add_argument("--file", help="add the entry to this tokens file")
    new.add_argument("--json", action="store_true")
    new.set_defaults(fn=cmd_token_new)
