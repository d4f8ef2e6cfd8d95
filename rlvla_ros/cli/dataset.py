"""`rlvla dataset info|recover|export-lerobot`: inspect recorded bags, repair interrupted ones and export them as
LeRobot v3.0 datasets, without ROS running."""

import argparse
import json


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser("dataset", help="inspect or repair recorded rosbag2 datasets")
    actions = parser.add_subparsers(dest="dataset_command", required=True, metavar="ACTION")
    info = actions.add_parser("info", help="episodes, tasks, success counts and topic rates of a bag or folder")
    info.add_argument("path", help="a rosbag2 directory or a folder of them")
    info.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    info.set_defaults(handler=_info)
    recover = actions.add_parser("recover", help="make a bag left by a killed recorder readable (like reindex)")
    recover.add_argument("path", help="the rosbag2 directory")
    recover.set_defaults(handler=_recover)
    export = actions.add_parser(
        "export-lerobot", help="write the complete episodes of bags as a LeRobotDataset v3.0 (RL columns included)"
    )
    export.add_argument("bags", nargs="+", help="rosbag2 directories or folders of them")
    export.add_argument("output", help="the dataset directory to create (must not exist, or be empty)")
    export.add_argument("--fps", type=int, default=10, help="control rate the episodes were recorded at (10)")
    export.add_argument(
        "--video-codec", choices=("lossless", "av1"), default="lossless",
        help="lossless: H.264 RGB, decodes back exactly (default); av1: LeRobot's usual, ~4x smaller, lossy",
    )
    export.add_argument("--robot-type", default="rlvla_arm", help="info.json robot_type (rlvla_arm)")
    export.set_defaults(handler=_export_lerobot)


def _info(args: argparse.Namespace) -> int:
    from rlvla_ros.data import dataset_info, format_dataset_info
    from rlvla_ros.data.bag_reader import find_bags, recording_counts

    try:
        info = dataset_info(args.path)
        info["recording"] = recording_counts(find_bags(args.path))
    except ValueError as error:
        print(f"rlvla dataset info: {error}")
        return 1
    if args.json:
        print(json.dumps(info))
        return 0
    print(format_dataset_info(info))
    if info["recording"]:
        print("Recorded (received / written / dropped):")
        for topic, counts in info["recording"].items():
            print(f"  {topic}  {counts['received']} / {counts['written']} / {counts['dropped']}")
    return 0


def _recover(args: argparse.Namespace) -> int:
    from rlvla_ros.data import recover_bag

    try:
        report = recover_bag(args.path)
    except ValueError as error:
        print(f"rlvla dataset recover: {error}")
        return 1
    if report["recovered"]:
        print(f"recovered {report['messages']} messages on {len(report['topics'])} topics into {report['path']}")
    else:
        print(f"{report['path']} is complete; nothing to recover")
    return 0


def _export_lerobot(args: argparse.Namespace) -> int:
    from rlvla_ros.data import export_lerobot

    try:
        info = export_lerobot(
            args.bags, args.output, fps=args.fps, codec=args.video_codec, robot_type=args.robot_type
        )
    except ValueError as error:
        print(f"rlvla dataset export-lerobot: {error}")
        return 1
    cameras = [name for name, feature in info["features"].items() if feature["dtype"] == "video"]
    print(
        f"wrote {info['total_episodes']} episodes, {info['total_frames']} frames, {info['total_tasks']} tasks, "
        f"cameras {', '.join(cameras)} to {args.output} (LeRobot {info['codebase_version']})"
    )
    return 0
