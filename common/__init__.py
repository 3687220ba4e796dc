"""What every app shares and nothing else provides: logging with secrets scrubbed, Redis
clients that reconnect, the metric series, JSON values PostgreSQL can store, the API's
JSON parser, error format and pagination, admin display helpers. It imports no app of the
project (lint-imports checks it), so any app may import it."""
