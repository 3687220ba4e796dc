"""Flower's options from the Django settings (`celery flower --conf=config/flowerconfig.py`):
basic auth always, persistent state (task history survives restarts)."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from django.conf import settings  # noqa: E402

basic_auth = [settings.FLOWER_BASIC_AUTH]
port = settings.FLOWER_PORT
address = settings.FLOWER_ADDRESS
persistent = True
db = settings.FLOWER_DB
# Keep the newest tasks in memory (and in the state file); node tasks are many.
max_tasks = 50_000
# The worker's and beat's own messages name tasks by what they run (node <block>:<node>).
natural_time = False
