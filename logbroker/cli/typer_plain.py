"""Starting the logbroker CLI fast: typer without pydantic for plain parameters.

typer 0.2x coerces every parameter through a pydantic ``TypeAdapter`` built on first use, and
importing pydantic for that took ~0.2 s of the ~0.4 s a one-record ``logbroker publish`` took.
The CLI's parameters are all str, int, float, bool or lists of them, so :func:`plain_command`
gives those a few lines of plain Python instead; anything else keeps typer's own coercion. Only
:mod:`logbroker.cli.root` imports this module (no module outside logbroker/cli imports typer).
"""

from __future__ import annotations

from types import SimpleNamespace

import typer

__all__ = ["PlainCoercion", "plain_command"]


class PlainCoercion:
    """Turns a command-line string into a str, int, float or bool (or a list of them) in plain Python.

    The errors repeat pydantic's wording, and as with pydantic an int accepts "1.0" but not "1.5".
    """

    KINDS = {str: "string", int: "integer", float: "number", bool: "boolean"}
    BOOLS = {"": False, "0": False, "off": False, "f": False, "false": False, "n": False, "no": False,
             "1": True, "on": True, "t": True, "true": True, "y": True, "yes": True}

    def __init__(self, kind: type, multiple: bool) -> None:
        self.kind, self.multiple = kind, multiple

    @classmethod
    def for_param(cls, param) -> "PlainCoercion | None":
        desc = getattr(param, "type_descriptor", None)
        info = getattr(desc, "parameter_info", None)
        if desc is None or getattr(param, "_runtime_param", False) is not None or desc.file_annotation is not None \
                or any(getattr(info, a, None) is not None for a in ("parser", "min", "max")) or desc.is_choice:
            return None
        kind, multiple = desc.annotation, desc.is_list
        if multiple:
            args = getattr(kind, "__args__", ())
            kind = args[0] if len(args) == 1 else None
        return cls(kind, multiple) if kind in cls.KINDS else None

    def coerce(self, value, param, ctx):
        if value is None:
            return () if self.multiple else None
        if self.multiple:
            return [self._one(v, param, ctx) for v in value]
        return self._one(value, param, ctx)

    def _one(self, value, param, ctx):
        if isinstance(value, self.kind) and (self.kind is bool or not isinstance(value, bool)):
            return value
        try:
            if self.kind is bool:
                return self.BOOLS[str(value).strip().lower()]
            if self.kind is int and not isinstance(value, int):
                try:
                    return int(value)
                except ValueError:
                    f = float(value)
                    if f.is_integer():
                        return int(f)
                    raise
            return self.kind(value)
        except (TypeError, ValueError, OverflowError, KeyError):
            name = self.KINDS[self.kind]
            raise typer.BadParameter(f"Input should be a valid {name}, unable to parse string as an {name}"
                                     if name == "integer" else f"Input should be a valid {name}",
                                     ctx=ctx, param=param) from None


def plain_command(app: typer.Typer):
    """The click command of ``app`` with :class:`PlainCoercion` for its str, int, float and bool
    parameters (and the --help option typer would build on first use).

    It fills typer's lazily built per-parameter ``_runtime_param``; any other type, or a typer
    without that attribute (older ones coerce through click), keeps typer's own coercion.
    """
    from typer.main import get_command
    root = get_command(app)
    # All that get_help_option reads of a context: the option's names.
    names = SimpleNamespace(help_option_names=(app.info.context_settings or {}).get("help_option_names",
                                                                                      ["--help"]))
    todo = [root]
    while todo:
        cmd = todo.pop()
        todo.extend(getattr(cmd, "commands", {}).values())
        _whole_short_help(cmd)
        try:
            help_option = cmd.get_help_option(names)  # built here once, then cached by the command
        except AttributeError:  # a click that reads more of the context: it builds --help itself
            help_option = None
        for param in [*cmd.params, *([help_option] if help_option is not None else [])]:
            plain = PlainCoercion.for_param(param)
            if plain is not None:
                param._runtime_param = plain
                _classic_help(param, plain)
    return root


METAVARS = {str: "TEXT", int: "INTEGER", float: "NUMBER"}


def _whole_short_help(cmd) -> None:
    """The line a command gets in its group's list: its help's first paragraph, whole (click cuts it
    at about 45 characters with '...'), without the example."""
    if getattr(cmd, "short_help", None) or not getattr(cmd, "help", None):
        return
    first = " ".join(cmd.help.strip().split("\n\n")[0].split())
    cmd.short_help = first.split("  Example:")[0].split(" Example:")[0].strip()


def _classic_help(param, plain: PlainCoercion) -> None:
    """Help in click's classic style: ``NAME`` / ``[NAME]`` arguments and ``TEXT`` / ``INTEGER``
    option values, where typer 0.2x prints ``{name}``, ``name <str>`` and ``<list[str]>``. An
    explicit metavar, a flag, or a typer without these hooks is left alone."""
    if param.metavar is not None or getattr(param, "is_flag", False) or plain.kind is bool:
        return
    label = METAVARS[plain.kind]
    if param.param_type_name == "argument":
        name = (param.name or "").upper()
        if hasattr(param, "_usage_display_name"):
            param._usage_display_name = lambda: name if param.required else f"[{name}]"
        if hasattr(param, "display_type_rich"):
            param.display_type_rich = lambda ctx: None  # the help row shows NAME alone
        param.metavar = name
    else:
        param.metavar = label
