"""``logbroker groups``: list, describe and delete consumer groups and reset their committed offsets,
like kafka-consumer-groups, in the data directory or (``--bootstrap-server``) on a Kafka cluster;
each subcommand is one call of :class:`~logbroker.broker.GroupAdmin` or of the cluster's admin.
"""

from typing import Annotated, Optional

import typer

from logbroker import errors
from logbroker.cli.kafka_options import BootstrapServer, CommandConfig, GroupOption, one_name
from logbroker.cli.options import PLAIN, GroupName, Json
from logbroker.cli.output import err, print_json, print_names
from logbroker.cli.target import broker, cluster, group_admin, nothing_in

__all__ = ["groups_app"]

groups_app = typer.Typer(help="List, describe, delete consumer groups and reset their offsets (like kafka-consumer-groups).",
                         **PLAIN)


def _group_name(ctx: typer.Context, group: Optional[str], option: Optional[str]) -> str:
    """The GROUP argument or --group (no environment variable: an admin command names its group)."""
    return one_name(ctx, group, option, what="group", param="group", env=None)


def _named_group(ctx: typer.Context, group: Optional[str], option: Optional[str], bootstrap_server: Optional[str],
                 command_config: Optional[str]):
    """(the groups' admin: the cluster's or the data directory's, the group's name)."""
    remote = cluster(bootstrap_server, command_config)
    group = _group_name(ctx, group, option)
    return group_admin(remote), group


@groups_app.command("list")
def groups_list(
    json: Json = False,
    bootstrap_server: BootstrapServer = None,
    command_config: CommandConfig = None,
) -> None:
    """List consumer groups.  Example: logbroker groups list"""
    remote = cluster(bootstrap_server, command_config)
    b = remote or broker()
    print_names(group_admin(remote).list_groups(), json, nothing_in(b, "consumer groups"))


@groups_app.command("describe")
def groups_describe(
    ctx: typer.Context,
    group: GroupName = None,
    json: Json = False,
    group_option: GroupOption = None,
    bootstrap_server: BootstrapServer = None,
    command_config: CommandConfig = None,
) -> None:
    """Committed offsets, lag and members of a group.  Example: logbroker groups describe billing"""
    admin, group = _named_group(ctx, group, group_option, bootstrap_server, command_config)
    rows, members = admin.describe_group(group), admin.group_members(group)
    if json:
        print_json([{k: getattr(r, k) for k in r.__dataclass_fields__} for r in rows])
    else:
        from logbroker.tools.render import AUTO_COMMIT_NOTE, group_description
        typer.echo(group_description(group, rows, members))
        if members:  # live consumers: their commits trail what they printed
            err(AUTO_COMMIT_NOTE)


@groups_app.command("delete")
def groups_delete(
    ctx: typer.Context,
    group: GroupName = None,
    group_option: GroupOption = None,
    bootstrap_server: BootstrapServer = None,
    command_config: CommandConfig = None,
) -> None:
    """Delete a group's committed offsets (refused while it has live members).  Example: logbroker groups delete billing"""
    admin, group = _named_group(ctx, group, group_option, bootstrap_server, command_config)
    admin.delete_group(group)
    err(f"Deleted group {group}.")


@groups_app.command("reset-offsets")
def groups_reset_offsets(
    ctx: typer.Context,
    group: GroupName = None,
    topic: Annotated[Optional[str], typer.Option("--topic", help="TOPIC or TOPIC:P,P,... to reset (required).")] = None,
    to_earliest: Annotated[bool, typer.Option("--to-earliest", help="To the log start offset.")] = False,
    to_latest: Annotated[bool, typer.Option("--to-latest", help="To the log end offset.")] = False,
    to_current: Annotated[bool, typer.Option("--to-current", help="To the current committed offset.")] = False,
    to_offset: Annotated[Optional[int], typer.Option("--to-offset", help="To this offset.")] = None,
    shift_by: Annotated[Optional[int], typer.Option("--shift-by", help="Move by N (negative: back).")] = None,
    to_datetime: Annotated[Optional[str], typer.Option("--to-datetime", help="To the first record at or after this ISO-8601 time.")] = None,
    by_duration: Annotated[Optional[str], typer.Option("--by-duration", help="To this ISO-8601 duration ago (e.g. PT1H).")] = None,
    execute: Annotated[bool, typer.Option("--execute", help="Apply the plan (otherwise a dry run).")] = False,
    group_option: GroupOption = None,
    bootstrap_server: BootstrapServer = None,
    command_config: CommandConfig = None,
) -> None:
    """Move a group's committed offsets, like kafka-consumer-groups --reset-offsets (dry run unless --execute).

    Example: logbroker groups reset-offsets billing --topic orders --to-earliest --execute
    """
    remote = cluster(bootstrap_server, command_config)
    group = _group_name(ctx, group, group_option)
    if topic is None:
        raise errors.InvalidConfigError("--topic is required: TOPIC, or TOPIC:P,P,... for some partitions")
    specs = [s for s, on in (("to-earliest", to_earliest), ("to-latest", to_latest), ("to-current", to_current),
                             (("to-offset", to_offset), to_offset is not None), (("shift-by", shift_by), shift_by is not None),
                             (("to-datetime", to_datetime), to_datetime is not None),
                             (("by-duration", by_duration), by_duration is not None)) if on]
    if len(specs) != 1:
        raise errors.InvalidConfigError("give exactly one of --to-earliest, --to-latest, --to-current, --to-offset, "
                                        "--shift-by, --to-datetime, --by-duration")
    name, _, parts = topic.partition(":")
    try:
        partitions = [int(p) for p in parts.split(",")] if parts else None
    except ValueError:
        raise errors.InvalidConfigError(f"--topic {topic!r}: partitions must be integers, as in orders:0,2") from None
    from logbroker.tools.render import plural, reset_plan
    admin = group_admin(remote)
    plan = admin.plan_reset_offsets(group, name, partitions, specs[0])
    typer.echo(reset_plan(group, plan))
    if execute:
        admin.execute_reset(plan)
        err(f"Reset {plural(len(plan), 'partition')} of group {group}.")
    else:
        err("Dry run: nothing changed. Add --execute to apply this plan.")
