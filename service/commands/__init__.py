"""One module per `meridian` subcommand, each with `register(subparsers)`; heavy imports stay inside handlers."""
