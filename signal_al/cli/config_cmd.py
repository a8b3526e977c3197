"""``signal-al config show|keys``: the resolved experiment config and every key's help."""

from __future__ import annotations

import argparse

from signal_al.cli.options import add_config_args, config_from_args, console
from signal_al.core.errors import ConfigError


def cmd_config_show(args: argparse.Namespace) -> int:
    import yaml

    from signal_al.core.config_io import to_dict

    config = config_from_args(args)
    if args.key == "run_dir":
        print(config.run_dir)
    elif args.key:
        value: object = to_dict(config)
        for part in args.key.split("."):
            if not isinstance(value, dict) or part not in value:
                raise ConfigError(f"no config key {args.key!r} (see `signal-al config keys`)")
            value = value[part]
        print(value if not isinstance(value, (dict, list)) else yaml.safe_dump(value, sort_keys=False), end="\n")
    else:
        print(yaml.safe_dump(to_dict(config), sort_keys=False), end="")
    return 0


def cmd_config_keys(args: argparse.Namespace) -> int:
    from rich.table import Table

    from signal_al.config import ExperimentConfig
    from signal_al.core.config_io import describe_fields

    rows = describe_fields(ExperimentConfig)
    if args.section:
        wanted = args.section.strip().rstrip(".")
        rows = [row for row in rows if row[0] == wanted or row[0].startswith(wanted + ".")]
        if not rows:
            import difflib

            names = sorted({key.split(".")[0] for key, *_ in describe_fields(ExperimentConfig) if "." in key})
            close = difflib.get_close_matches(wanted, names, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"sections: {', '.join(names)}"
            raise ConfigError(f"config keys: no section or key '{wanted}' ({hint})")
    table = Table(title="config keys (set in YAML or with --set KEY=VALUE)")
    for column in ("key", "type", "default", "help"):
        table.add_column(column, overflow="fold")
    for key, type_name, default, help_text in rows:
        table.add_row(key, type_name, repr(default), help_text)
    console().print(table)
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    config = commands.add_parser("config", help="Show the resolved config or list every key.",
                                 description="Show the resolved experiment config or list every key with its help.")
    actions = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="Print the config after YAML and --set overrides, as YAML.",
                              description="Print the config after YAML and --set overrides, as YAML.")
    add_config_args(show)
    show.add_argument("--key", help="Print only this key (e.g. ppo.learning_rate), or run_dir for the run folder.")
    show.set_defaults(handler=cmd_config_show)
    keys = actions.add_parser("keys", help="List every config key with type, default and help.",
                              description="List every config key with type, default and help.")
    keys.add_argument("section", nargs="?", help="Only this section (e.g. ppo) or key (e.g. ppo.learning_rate); "
                      "an unknown one is an error.")
    keys.set_defaults(handler=cmd_config_keys)


__all__ = ["add_parser", "cmd_config_keys", "cmd_config_show"]
