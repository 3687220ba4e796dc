"""python manage.py run_graph FILE.json --input key=value ... | --watch EXECUTION_ID"""

import json
import sys
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from redis.exceptions import RedisError

from credits.services import InsufficientCredits
from executions.follow import follow
from executions.limits import LimitPassed
from executions.runs import execution_create
from graphs.models import Graph
from graphs.services import graph_create, graph_update
from graphs.validation import GraphInvalid


class Command(BaseCommand):
    help = (
        "Create or update a graph from a JSON document (matched by name, for --user), run it, "
        "show its progress and print its outputs. --watch follows an existing run instead."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", help="graph document (JSON)")
        parser.add_argument(
            "--input",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="a graph input; VALUE is read as JSON when it parses, else text",
        )
        parser.add_argument("--user", default="admin", help="whose graph and credits (admin)")
        parser.add_argument("--watch", metavar="EXECUTION_ID", help="follow an existing run")
        parser.add_argument("--timeout", type=float, default=3600, help="seconds to follow")

    def handle(self, *args, **options):
        try:
            self._handle(options)
        except DatabaseError as exc:
            raise CommandError(
                f"cannot reach the database ({str(exc).strip().splitlines()[0]}): start the "
                "services with `make run` or `scripts/services.sh start`"
            ) from exc
        except RedisError as exc:
            raise CommandError(
                f"cannot reach Redis ({exc}): start the services with `make run` or "
                "`scripts/services.sh start`"
            ) from exc

    def _handle(self, options):
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"no user named {options['user']!r}")
        if options["watch"]:
            run_id = options["watch"]
        elif options["file"]:
            run_id = self._start(user, options)
        else:
            raise CommandError("give a graph FILE to run, or --watch EXECUTION_ID")
        record = follow(run_id, user=user, timeout=options["timeout"], out=self.stderr)
        self.stdout.write(json.dumps(record["outputs"], indent=2, default=str))
        if record["status"] != "COMPLETED":
            self.stderr.write(f"run {record['status']}: {record['error']}")
            sys.exit(1)

    def _start(self, user, options) -> str:
        try:
            document = json.loads(Path(options["file"]).read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read {options['file']}: {exc}") from exc
        inputs = dict(_parse_input(item) for item in options["input"])
        try:
            existing = Graph.objects.filter(owner=user, name=document.get("name")).first()
            version = (
                graph_update(graph=existing, document=document)
                if existing
                else graph_create(owner=user, document=document)
            )
            run = execution_create(user=user, graph=version.graph, inputs=inputs)
        except GraphInvalid as exc:
            problems = "\n".join(f"  - {_where(p)}{p['message']}" for p in exc.problems)
            raise CommandError(f"the graph is not valid:\n{problems}") from exc
        except (InsufficientCredits, LimitPassed) as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write(f"graph {version.graph.pk} v{version.version}; run {run.pk}")
        return str(run.pk)


def _where(problem: dict) -> str:
    """'node greet, pin format: ' for a problem that says where it is."""
    places = [f"{key.replace('_', ' ')} {problem[key]}" for key in
              ("node_id", "pin", "link_index", "input", "field") if key in problem]  # fmt: skip
    return f"{', '.join(places)}: " if places else ""


def _parse_input(item: str) -> tuple[str, object]:
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise CommandError(f"--input takes KEY=VALUE, not {item!r}")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw
