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
    from generators.config import format_config, load_config
    from sw_driver.commands import cmd_demo

    cfg = load_config(args.config)
    print(f"== npegen demo: design '{cfg.name}' ==\n")
    print(format_config(cfg))
    print()
    return cmd_demo(args)


def _engine_manifest_extra(cfg, engine) -> dict:
    g = engine.geometry
    return {
        "unit": "mac",
        "config": cfg.name,
        "config_hash": f"0x{cfg.config_hash:08x}",
        "formats": {name: i for i, name in enumerate(engine.formats)},
        "output_formats": {name: i for i, name in enumerate(engine.output_formats)},
        "accumulator": {
            "register_bits": g.register_bits,
            "chunks": g.chunks,
            "chunk_bits": g.chunk_bits,
            "modes": [{"lane_bits": m.lane_bits, "lanes": m.lanes, "formats": list(m.formats),
                       "lsb_exponent": m.lsb_exponent, "simd_width": m.simd.width,
                       "dot_width": m.dot.width} for m in g.modes],
        },
    }


def _progress(prefix):
    import time

    t0 = time.monotonic()

    def say(msg):
        print(f"[{prefix} {time.monotonic() - t0:5.1f} s] {msg}", file=sys.stderr, flush=True)
    return say


def _cmd_generate(args) -> int:
    from generators.config import ConfigError, load_config

    try:
        cfg = load_config(args.config)
    except ConfigError as err:
        print("\n".join(err.errors), file=sys.stderr)
        return 1
    if args.unit == "mac":
        from generators.build import write_unit
        from generators.rtl.engine import MacEngine

        engine = MacEngine.from_config(cfg)
        manifest = write_unit(engine, "npe_mac", args.output,
                              extra=_engine_manifest_extra(cfg, engine))
        print(f"wrote {args.output}/npe_mac.v and npe_mac.manifest.json "
              f"({len(manifest['ports'])} ports, accumulator {engine.geometry.register_bits} bits)")
        return 0
    if args.unit != "coprocessor":
        print(f"npegen generate: unit must be 'coprocessor' or 'mac', not {args.unit!r}",
              file=sys.stderr)
        return 2
    from generators.build import write_coprocessor

    say = _progress("npegen generate")
    manifest = write_coprocessor(cfg, args.output, progress=say, compress=args.compress)
    say("done")
    print(f"wrote {args.output}/: {manifest['verilog']} (top {manifest['top']}, "
          f"{len(manifest['ports'])} ports), regmap.json/.h/.md, manifest.json, {manifest['core']}")
    return 0


def _array_shape(text: str):
    """``"RxC"`` -> ``(R, C)`` for ``--array``."""
    rows, sep, cols = text.lower().partition("x")
    if not sep or not rows.isdigit() or not cols.isdigit():
        raise argparse.ArgumentTypeError(f"array must be ROWSxCOLS, e.g. 2x2, not {text!r}")
    return int(rows), int(cols)


def _cmd_synth(args) -> int:
    from generators.config import ConfigError
    from generators.synth import synth_unit

    if args.fmax and args.target != "ecp5":
        print("npegen synth: --fmax needs --target ecp5 (nextpnr-ecp5)", file=sys.stderr)
        return 2
    try:
        result = synth_unit(args.config, unit=args.unit, target=args.target, fmax=args.fmax,
                            share_multiplier=args.share_multiplier,
                            pipeline_stages=args.pipeline_stages, array=args.array,
                            progress=True, seeds=args.seeds,
                            paths=args.paths, placement_timeout=args.placement_timeout,
                            placer=args.placer, router=args.router,
                            clock_mhz=args.clock_mhz, tmg_ripup=args.tmg_ripup)
    except ConfigError as err:
        print("\n".join(err.errors), file=sys.stderr)
        return 1
    except ValueError as err:
        print(f"npegen synth: {err}", file=sys.stderr)
        return 2
    failed = result.get("pnr_error")
    if args.json:
        print(json.dumps(result))
    else:
        latest = result.pop("latest_registers", None)
        for k, v in result.items():
            print(f"{k:>10}: {v}")
        if latest:
            print(f"\n{'arrival (ns)':>12}  register (latest data first)")
            for row in latest:
                print(f"{row['arrival_ns']:12.2f}  {row['register']}")
    if failed:
        print(f"npegen synth: place and route failed: {failed}", file=sys.stderr)
        return 1
    return 0


def _cmd_lint(args) -> int:
    from generators.lint import lint_all

    units = tuple(args.unit or ("mac", "coprocessor"))
    return lint_all(verbose=args.verbose, configs=args.config or None, units=units)


def build_parser() -> argparse.ArgumentParser:
    from generators.synth import (CLOCK_MHZ, PLACERS, ROUTERS,  # (standard library only)
                                  TMG_RIPUP, UNITS)

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

    p = sub.add_parser("demo", help="what `make demo` runs: generate a design and run the "
                                    "example CNN on its RTL")
    p.add_argument("--config", default="default")
    p.add_argument("--backend", default="verilator", choices=("verilator", "icarus", "model"))
    p.set_defaults(func=_cmd_demo)

    from sw_driver.commands import add_commands
    add_commands(sub)          # matmul, run

    p = sub.add_parser("generate", help="write a design's Verilog, register map, manifest "
                                        "and FuseSoC core (or one unit's Verilog)")
    p.add_argument("config")
    p.add_argument("--unit", default="coprocessor", choices=("coprocessor", "mac"),
                   help="coprocessor (the AXI4 top, default) or mac (the SIMD MAC engine)")
    p.add_argument("-o", "--output", required=True, help="output directory")
    p.add_argument("--compress", action="store_true",
                   help="write Verilog over 2 MiB gzip-compressed (.v.gz), as hw/ holds it")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("synth", help="area (Yosys) and Fmax (nextpnr, ECP5) of a unit")
    p.add_argument("config")
    p.add_argument("--unit", default="mac", choices=UNITS,
                   help="mac (the MAC engine, default), coprocessor (the AXI4 top) or shell "
                        "(the co-processor with its PEs as black boxes; area only)")
    p.add_argument("--target", choices=("xc7", "ecp5"), default="xc7")
    p.add_argument("--fmax", action="store_true", help="with ecp5: place and route for Fmax")
    p.add_argument("--share-multiplier", choices=("config", "yes", "no"), default="config")
    p.add_argument("--pipeline-stages", type=int, default=None, metavar="N",
                   help="override the config's MAC pipeline depth (1 to the engine's maximum)")
    p.add_argument("--array", type=_array_shape, default=None, metavar="RxC",
                   help="coprocessor/shell: build the PE array as R rows x C columns instead "
                        "of the config's (e.g. 2x2: a proxy for the Fmax of a design too large "
                        "for the largest ECP5)")
    p.add_argument("--paths", type=int, default=0, metavar="N",
                   help="with --fmax: list the N register groups whose data arrives latest "
                        "(nextpnr's arrival times; what a higher clock would need cut)")
    p.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="with --fmax: place and route N times (seeds 1..N) and report the "
                        "median Fmax and each (placement moves it by several MHz)")
    p.add_argument("--placement-timeout", type=float, default=None, metavar="SECONDS",
                   help="with --fmax: stop a placement that runs longer and go on with the "
                        "next seed (the median is of those that finished)")
    p.add_argument("--placer", choices=PLACERS, default=None,
                   help="with --fmax: nextpnr's placer (default heap; static for a "
                        "co-processor that fills the largest ECP5 beyond 70 %%)")
    p.add_argument("--router", choices=ROUTERS, default=None,
                   help="with --fmax: nextpnr's router (default router1; router2 where the "
                        "placer is static by default)")
    p.add_argument("--clock-mhz", type=float, default=None, metavar="MHZ",
                   help="with --fmax: the clock nextpnr is constrained to (default: "
                        + ", ".join(f"{mhz:g} for {unit}" for unit, mhz in CLOCK_MHZ.items())
                        + ")")
    p.add_argument("--tmg-ripup", action=argparse.BooleanOptionalAction, default=None,
                   help="with --fmax: nextpnr's timing-driven rip-up in the router (default: "
                        + ", ".join(f"{'on' if on else 'off'} for {unit}"
                                    for unit, on in TMG_RIPUP.items()) + ")")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("lint", help="verilator --lint-only -Wall over the generated Verilog "
                                    "(MAC engine and co-processor top of every shipped config)")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--config", action="append", metavar="NAME",
                   help="lint only this shipped config (repeatable; default: all)")
    p.add_argument("--unit", action="append", choices=("mac", "coprocessor"),
                   help="lint only this unit (repeatable; default: both)")
    p.set_defaults(func=_cmd_lint)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
