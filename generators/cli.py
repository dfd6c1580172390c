"""The ``npegen`` command line.

Subcommands import what they need lazily, so that ``npegen config`` and ``npegen formats``
work on a machine without the HDL toolchain.
"""

from __future__ import annotations

import argparse
import json
import sys


def _cmd_config(args) -> int:
    from generators.config import ConfigError, config_to_dict, format_config, load_config

    try:
        cfg = load_config(args.config)
    except ConfigError as err:
        print(f"{args.config}: {len(err.errors)} error(s)", file=sys.stderr)
        for line in err.errors:
            print(f"  {line}", file=sys.stderr)
        return 1
    except FileNotFoundError as err:
        print(f"npegen: {err}", file=sys.stderr)
        return 1
    if args.action == "check":
        print(f"{args.config}: ok (config hash 0x{cfg.config_hash:08x})")
    elif args.json:
        print(json.dumps(config_to_dict(cfg, derived=True), indent=2))
    else:
        print(format_config(cfg))
    return 0


def _cmd_formats(args) -> int:
    from generators.formats import format_formats_table, formats_table

    rows = formats_table(word_bits=args.word_bits)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_formats_table(rows))
    return 0


def _cmd_demo(args) -> int:
    from generators.config import load_config, format_config
    from generators.formats import format_formats_table, formats_table

    cfg = load_config(args.config)
    print(f"== npegen demo: design '{cfg.name}' ==\n")
    print(format_config(cfg))
    print("\n== number formats (lanes in a "
          f"{cfg.engine.word_bits}-bit operand word) ==\n")
    print(format_formats_table(formats_table(word_bits=cfg.engine.word_bits)))
    return 0


def _cmd_lint(args) -> int:
    from generators.lint import lint_all

    return lint_all(verbose=args.verbose)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="npegen",
        description="Generate, verify and drive mixed-precision neural processing engines.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("config", help="validate or show a design configuration")
    p.add_argument("action", choices=("show", "check"))
    p.add_argument("config", help="a YAML file, or the name of a shipped config (default, tiny, xr_npe)")
    p.add_argument("--json", action="store_true", help="with show: print JSON")
    p.set_defaults(func=_cmd_config)

    p = sub.add_parser("formats", help="print the table of number formats")
    p.add_argument("--word-bits", type=int, default=16, help="operand word width for the lanes column")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_formats)

    p = sub.add_parser("demo", help="what `make demo` runs")
    p.add_argument("--config", default="default")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("lint", help="verilator --lint-only -Wall over the generated Verilog")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=_cmd_lint)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
