"""The application: configuration, wiring of the stages into a running daemon, the command line."""
