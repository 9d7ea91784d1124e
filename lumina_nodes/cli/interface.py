"""``lumina interface show|list``: the definitions of installed messages, services and actions, as ros2
interface prints them (the .msg/.srv/.action text, nested message types expanded and indented by a tab)."""

from __future__ import annotations

from .graph import CommandError, normalize_type, run_verb


def add_parser(commands) -> None:
    parser = commands.add_parser("interface", help="message, service and action types (ros2 interface)")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    show = verbs.add_parser("show", help="a type's definition, nested types expanded")
    show.add_argument("type_name", help="e.g. lumina_nodes/msg/SyncState or lumina_nodes/srv/SetRhythm")
    comments = show.add_mutually_exclusive_group()
    comments.add_argument("--no-comments", action="store_true", help="leave out comments and blank lines")
    comments.add_argument("--all-comments", action="store_true", help="keep the comments of nested types too")
    show.set_defaults(run=run_verb(_show, "interface show"))

    listing = verbs.add_parser("list", help="the interface types of the installed packages")
    listing.add_argument("package", nargs="?", help="only this package's types")
    listing.set_defaults(run=run_verb(_list, "interface list"))


def _definition_file(type_name: str):
    from lumina_nodes.bag import BagError
    from lumina_nodes.bag.definitions import share_directory

    package, kind, name = normalize_type(type_name).split("/")
    try:
        path = share_directory(package) / kind / f"{name}.{kind}"
    except BagError as error:
        raise CommandError(str(error)) from None
    if not path.is_file():
        raise CommandError(f"type {package}/{kind}/{name} is not installed here ({path} does not exist)")
    return package, path


def _field_type(line: str, package: str) -> str | None:
    """The nested message type ('pkg/msg/Type') a definition line declares, else None."""
    from lumina_nodes.bag.definitions import field_types

    found = field_types(line, package)
    return normalize_type(found[0]) if found else None


def _lines(type_name: str, indent: str, keep_comments: bool, nested_comments: bool) -> list[str]:
    package, path = _definition_file(type_name)
    out = []
    for line in path.read_text().splitlines():
        code = line.split("#", 1)[0].strip()
        if not code and not keep_comments:
            continue
        out.append(indent + (line if keep_comments else code))
        nested = _field_type(line, package) if code else None
        if nested:
            out += _lines(nested, indent + "\t", nested_comments, nested_comments)
    return out


def _show(args):
    keep = not args.no_comments
    print("\n".join(_lines(args.type_name, "", keep, args.all_comments)))


def _list(args):
    from ament_index_python.packages import get_resources

    from lumina_nodes.bag.definitions import share_directory

    packages = sorted(get_resources("rosidl_interfaces"))
    if args.package:
        if args.package not in packages:
            raise CommandError(f"package '{args.package}' has no interfaces here")
        packages = [args.package]
    for kind, title in (("msg", "Messages"), ("srv", "Services"), ("action", "Actions")):
        names = [
            f"{package}/{kind}/{path.stem}"
            for package in packages
            for path in sorted((share_directory(package) / kind).glob(f"*.{kind}"))
        ]
        if names:
            print(f"{title}:")
            print("\n".join(f"    {name}" for name in names))
